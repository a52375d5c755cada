//! The result of `sgmap bench`: medians of interleaved runs, the ratios
//! between modes, peers and floors, as JSON and as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sgmap_benches::stats::{median, ratio};
use sgmap_benches::{ModeCounts, Sample};

use crate::size::{human, rate};
use crate::xfer::ModesJson;

/// Who moved the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Tool {
    /// sgmap itself.
    Sgmap,
    /// sg3_utils' sg_read.
    SgRead,
    /// fio's sg engine.
    Fio,
    /// The bare io_uring loop on the bsg node (no sgmap types): the floor
    /// of sgmap's io_uring transport.
    Bare,
    /// fio's io_uring engine on the disk's block device (`--direct=1`).
    FioUring,
    /// sg3_utils' sg_dd (indirect, `dio=1`) and sgm_dd (mmap): the write peers.
    SgDd,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::Sgmap => "sgmap",
            Tool::SgRead => "sg_read",
            Tool::Fio => "fio",
            Tool::Bare => "bare",
            Tool::FioUring => "fio_uring",
            Tool::SgDd => "sg_dd",
        }
    }
}

/// One contender of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub dir: &'static str,
    pub bs: usize,
    pub depth: usize,
    pub tool: Tool,
    pub mode: &'static str,
}

/// The medians of one contender's runs, and how they compare.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    pub tool: Tool,
    pub mode: String,
    pub dir: String,
    pub bs: usize,
    pub depth: usize,
    /// Commands in each run.
    pub commands_per_run: u64,
    /// Runs taken (the medians are over these).
    pub runs: usize,
    pub mb_per_s: f64,
    pub commands_per_s: f64,
    /// CPU time per 10^9 bytes; `None` when the tool does not report it.
    pub cpu_ms_per_gb: Option<f64>,
    /// Every run's commands per second, in the order taken.
    pub samples_commands_per_s: Vec<f64>,
    /// How the commands really ran, over all runs.
    pub modes_seen: ModesJson,
    /// This row ÷ sgmap indirect at the same direction, size and depth.
    pub vs_indirect: Option<f64>,
    /// Commands/s ÷ TEST UNIT READY round trips/s.
    pub vs_tur: Option<f64>,
    /// MB/s ÷ one memory copy of the transfer size from a cold source.
    pub vs_copy: Option<f64>,
    /// This row ÷ sg_read in the same mode (sgmap rows, reads at depth 1).
    pub vs_sg_read: Option<f64>,
    /// This row ÷ fio's sg engine at the same direction, size and depth.
    pub vs_fio: Option<f64>,
    /// sgmap uring rows: ÷ the bare io_uring floor at the same size and depth.
    #[serde(default)]
    pub vs_floor: Option<f64>,
    /// This row ÷ sg_dd (sgm_dd for mmap) in the same mode (sgmap rows,
    /// writes at depth 1).
    #[serde(default)]
    pub vs_sg_dd: Option<f64>,
    /// The lowest and highest per-round ratio behind each `vs_*` field that
    /// pairs rounds, keyed by the field's name (`"vs_fio"`): a spread that
    /// covers 1.0 makes that comparison a tie.
    #[serde(default)]
    pub spreads: BTreeMap<String, [f64; 2]>,
}

impl Row {
    /// The ratio `name` (`"vs_fio"`, ...) with its spread, if both are known.
    pub(crate) fn ratio_with_spread(&self, name: &str) -> Option<(f64, [f64; 2])> {
        let v = match name {
            "vs_indirect" => self.vs_indirect,
            "vs_tur" => self.vs_tur,
            "vs_copy" => self.vs_copy,
            "vs_sg_read" => self.vs_sg_read,
            "vs_fio" => self.vs_fio,
            "vs_floor" => self.vs_floor,
            "vs_sg_dd" => self.vs_sg_dd,
            _ => None,
        }?;
        Some((v, *self.spreads.get(name)?))
    }
}

/// Whether a spread of per-round ratios covers 1.0: neither side is ahead in
/// every round, so the comparison is a tie.
pub(crate) fn is_tie(spread: [f64; 2]) -> bool {
    spread[0] <= 1.0 && spread[1] >= 1.0
}

/// A floor's medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CopyFloor {
    pub bs: usize,
    pub mb_per_s: f64,
    pub samples_mb_per_s: Vec<f64>,
}

/// The floors that bound any mode.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Floors {
    /// TEST UNIT READY round trips per second (median).
    pub tur_commands_per_s: Option<f64>,
    pub tur_samples: Vec<f64>,
    /// Bytes of the cold source the copies read from.
    pub copy_source_bytes: usize,
    pub copy: Vec<CopyFloor>,
}

/// A contender that did not run, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Skip {
    pub tool: Tool,
    pub mode: String,
    pub dir: String,
    pub bs: Option<usize>,
    pub depth: usize,
    pub reason: String,
}

/// Everything `sgmap bench --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BenchDoc {
    pub device: String,
    /// The release of the kernel it ran on (`uname -r`); empty in documents
    /// written before the field existed.
    #[serde(default)]
    pub kernel: String,
    pub block_size: usize,
    /// The largest transfer one command can carry (the granted maximum).
    pub max_transfer: usize,
    pub rounds: usize,
    pub run_ms: u64,
    pub offset: u64,
    /// Bytes each contender cycles over; `None`: one transfer (the same blocks every time).
    pub span: Option<u64>,
    pub floors: Floors,
    pub results: Vec<Row>,
    pub skipped: Vec<Skip>,
}

/// Runs collected per contender, in the order taken.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub runs: BTreeMap<Key, Vec<Sample>>,
    pub tur: Vec<Sample>,
    pub copy: BTreeMap<usize, Vec<Sample>>,
}

fn med(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Option<f64> {
    median(&samples.iter().map(f).collect::<Vec<_>>())
}

/// The lowest and highest per-round ratio `a[i] / b[i]`, when the rounds pair up.
fn paired_spread(
    a: &[Sample],
    b: Option<&[Sample]>,
    f: impl Fn(&Sample) -> f64,
) -> Option<[f64; 2]> {
    let b = b?;
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, y)| f(y) > 0.0)
        .map(|(x, y)| f(x) / f(y))
        .collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (!r.is_empty()).then_some([lo, hi])
}

/// How `a` compares with `b`: the median of the per-round ratios `a[i] / b[i]`
/// (runs taken side by side in the same round share the machine's mood), or
/// the ratio of the medians when the rounds do not pair up.
fn paired(a: &[Sample], b: Option<&[Sample]>, f: impl Fn(&Sample) -> f64) -> Option<f64> {
    let b = b?;
    if a.len() == b.len() && !a.is_empty() {
        let r: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(_, y)| f(y) > 0.0)
            .map(|(x, y)| f(x) / f(y))
            .collect();
        median(&r)
    } else {
        ratio(med(a, &f), med(b, &f))
    }
}

impl Collected {
    /// Medians and ratios for every contender that ran.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let runs_of = |k: &Key| self.runs.get(k).map(Vec::as_slice);
        let mut rows = Vec::new();
        for (k, samples) in &self.runs {
            if samples.is_empty() {
                continue;
            }
            let c = med(samples, Sample::commands_per_s);
            let mb = med(samples, Sample::mb_per_s);
            let cpu = if samples.iter().all(|s| s.cpu_ms_per_gb().is_some()) {
                med(samples, |s| s.cpu_ms_per_gb().unwrap_or(0.0))
            } else {
                None
            };
            let mut modes = ModeCounts::default();
            for s in samples {
                modes.merge(s.modes);
            }
            let same = |tool: Tool, mode: &'static str| Key { tool, mode, ..*k };
            let indirect = runs_of(&same(Tool::Sgmap, "indirect"));
            let sg_read = (k.tool == Tool::Sgmap)
                .then(|| runs_of(&same(Tool::SgRead, k.mode)))
                .flatten();
            let floor = (k.tool == Tool::Sgmap && k.mode == "uring")
                .then(|| runs_of(&same(Tool::Bare, "uring")))
                .flatten();
            let fio = (k.tool != Tool::Fio)
                .then(|| runs_of(&same(Tool::Fio, "indirect")))
                .flatten();
            let sg_dd = (k.tool == Tool::Sgmap)
                .then(|| runs_of(&same(Tool::SgDd, k.mode)))
                .flatten();
            let cmd_ratio = |other| paired(samples, other, Sample::commands_per_s);
            let copy = self.copy.get(&k.bs).map(Vec::as_slice);
            let mut spreads = BTreeMap::new();
            let own_indirect = k.tool == Tool::Sgmap && k.mode == "indirect";
            for (name, other, by_mb) in [
                ("vs_indirect", indirect.filter(|_| !own_indirect), false),
                ("vs_tur", Some(self.tur.as_slice()), false),
                ("vs_copy", copy, true),
                ("vs_sg_read", sg_read, false),
                ("vs_fio", fio, false),
                ("vs_floor", floor, false),
                ("vs_sg_dd", sg_dd, false),
            ] {
                let f = if by_mb {
                    Sample::mb_per_s
                } else {
                    Sample::commands_per_s
                };
                if let Some(sp) = paired_spread(samples, other, f) {
                    spreads.insert(name.to_string(), sp);
                }
            }
            rows.push(Row {
                tool: k.tool,
                mode: k.mode.to_string(),
                dir: k.dir.to_string(),
                bs: k.bs,
                depth: k.depth,
                commands_per_run: samples[0].commands,
                runs: samples.len(),
                mb_per_s: mb.unwrap_or(0.0),
                commands_per_s: c.unwrap_or(0.0),
                cpu_ms_per_gb: cpu,
                samples_commands_per_s: samples.iter().map(Sample::commands_per_s).collect(),
                modes_seen: modes.into(),
                vs_indirect: if k.tool == Tool::Sgmap && k.mode == "indirect" {
                    None
                } else {
                    cmd_ratio(indirect)
                },
                vs_tur: cmd_ratio(Some(&self.tur)),
                vs_copy: paired(samples, copy, Sample::mb_per_s),
                vs_sg_read: cmd_ratio(sg_read),
                vs_fio: cmd_ratio(fio),
                vs_floor: cmd_ratio(floor),
                vs_sg_dd: cmd_ratio(sg_dd),
                spreads,
            });
        }
        rows
    }

    /// The floors' medians.
    pub(crate) fn floors(&self, copy_source_bytes: usize) -> Floors {
        Floors {
            tur_commands_per_s: med(&self.tur, Sample::commands_per_s),
            tur_samples: self.tur.iter().map(Sample::commands_per_s).collect(),
            copy_source_bytes,
            copy: self
                .copy
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(bs, s)| CopyFloor {
                    bs: *bs,
                    mb_per_s: med(s, Sample::mb_per_s).unwrap_or(0.0),
                    samples_mb_per_s: s.iter().map(Sample::mb_per_s).collect(),
                })
                .collect(),
        }
    }
}

/// A ratio cell: `-` when not measured, a `~` after it when the rounds'
/// spread covers 1.0 (a tie).
fn x(r: &Row, name: &str, v: Option<f64>) -> String {
    match (v, r.ratio_with_spread(name)) {
        (None, _) => "-".to_string(),
        (Some(v), Some((_, sp))) if is_tie(sp) => format!("{v:.2}~"),
        (Some(v), _) => format!("{v:.2}"),
    }
}

/// The comparison as a text table, with the floors above it.
pub(crate) fn table(doc: &BenchDoc) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sgmap bench on {} ({}-byte blocks, max transfer {}): medians of {} interleaved runs of ~{} ms",
        doc.device,
        doc.block_size,
        human(doc.max_transfer as u64),
        doc.rounds,
        doc.run_ms
    );
    let f = &doc.floors;
    let _ = write!(
        s,
        "floors: TEST UNIT READY {} cmd/s; one copy from a cold {} source:",
        f.tur_commands_per_s.map_or("?".into(), rate),
        human(f.copy_source_bytes as u64)
    );
    for c in &f.copy {
        let _ = write!(s, " {} {:.0} MB/s;", human(c.bs as u64), c.mb_per_s);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "{:<6} {:>9} {:>5} {:<17} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6} {:>8} {:>6} {:>6} {:>6}",
        "dir",
        "size",
        "depth",
        "tool mode",
        "MB/s",
        "cmd/s",
        "CPU ms/GB",
        "÷indir",
        "÷TUR",
        "÷copy",
        "÷sg_read",
        "÷fio",
        "÷floor",
        "÷sg_dd"
    );
    let mut last = None;
    for r in &doc.results {
        let group = (r.dir.clone(), r.bs);
        if last.as_ref().is_some_and(|l| *l != group) {
            s.push('\n');
        }
        last = Some(group);
        let _ = writeln!(
            s,
            "{:<6} {:>9} {:>5} {:<17} {:>9.1} {:>9} {:>9} {:>8} {:>6} {:>6} {:>8} {:>6} {:>6} {:>6}{}",
            r.dir,
            human(r.bs as u64),
            r.depth,
            format!("{} {}", r.tool.name(), r.mode),
            r.mb_per_s,
            rate(r.commands_per_s),
            r.cpu_ms_per_gb.map_or("-".into(), |v| format!("{v:.0}")),
            x(r, "vs_indirect", r.vs_indirect),
            x(r, "vs_tur", r.vs_tur),
            x(r, "vs_copy", r.vs_copy),
            x(r, "vs_sg_read", r.vs_sg_read),
            x(r, "vs_fio", r.vs_fio),
            x(r, "vs_floor", r.vs_floor),
            x(r, "vs_sg_dd", r.vs_sg_dd),
            fell_back(r)
        );
    }
    if doc
        .results
        .iter()
        .any(|r| r.spreads.values().any(|sp| is_tie(*sp)))
    {
        s.push_str(
            "~: a tie; the per-round ratios straddle 1.0 (neither side was ahead in every round)\n",
        );
    }
    for k in &doc.skipped {
        let _ = writeln!(
            s,
            "skipped: {} {} {}{} depth {}: {}",
            k.tool.name(),
            k.mode,
            k.dir,
            k.bs.map_or(String::new(), |b| format!(" {}", human(b as u64))),
            k.depth,
            k.reason
        );
    }
    s
}

/// A note when commands did not run in the row's mode.
fn fell_back(r: &Row) -> String {
    let m = &r.modes_seen;
    let total = m.mmap + m.direct + m.indirect + m.mixed;
    let own = match r.mode.as_str() {
        "mmap" => m.mmap,
        "direct" | "uring" => m.direct,
        _ => m.indirect,
    };
    if total > 0 && own < total {
        format!("  ({} of {total} ran otherwise)", total - own)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(commands: u64, bs: u64, ms: u64) -> Sample {
        Sample {
            commands,
            bytes: commands * bs,
            wall: Duration::from_millis(ms),
            cpu: None,
            modes: ModeCounts {
                indirect: commands,
                ..Default::default()
            },
        }
    }

    /// A bench document of `rows` on a 512-byte-block /dev/sg0, 3 rounds.
    fn doc_of(floors: Floors, results: Vec<Row>) -> BenchDoc {
        BenchDoc {
            device: "/dev/sg0".into(),
            kernel: "6.1.0-test".into(),
            block_size: 512,
            max_transfer: 1 << 20,
            rounds: 3,
            run_ms: 100,
            offset: 0,
            span: None,
            floors,
            results,
            skipped: vec![],
        }
    }

    #[test]
    fn documents_from_before_the_kernel_field_still_parse() {
        let old = r#"{"device": "/dev/sg0", "block_size": 512, "max_transfer": 1048576,
            "rounds": 3, "run_ms": 80, "offset": 0, "span": null,
            "floors": {"tur_commands_per_s": null, "tur_samples": [], "copy_source_bytes": 0, "copy": []},
            "results": [], "skipped": []}"#;
        let doc: BenchDoc = serde_json::from_str(old).unwrap();
        assert_eq!(doc.kernel, "");
        let new = serde_json::to_value(BenchDoc {
            kernel: "7.2.7".into(),
            ..doc
        })
        .unwrap();
        assert_eq!(new["kernel"], "7.2.7");
    }

    #[test]
    fn paired_ratios_take_the_median_of_each_rounds_ratio() {
        let a = [
            sample(10, 1, 1000),
            sample(20, 1, 1000),
            sample(30, 1, 1000),
        ];
        let b = [sample(20, 1, 1000), sample(5, 1, 1000), sample(10, 1, 1000)];
        // Per round: 0.5, 4, 3 -> 3 (the ratio of medians would say 20/10 = 2).
        assert_eq!(paired(&a, Some(&b), Sample::commands_per_s), Some(3.0));
        // Rounds that do not pair up: the ratio of the medians.
        assert_eq!(
            paired(&a, Some(&b[..2]), Sample::commands_per_s),
            Some(20.0 / 12.5)
        );
        assert_eq!(paired(&a, None, Sample::commands_per_s), None);
    }

    #[test]
    fn ratios_use_medians_of_the_same_size_and_depth() {
        let mut c = Collected::default();
        let key = |tool, mode| Key {
            dir: "read",
            bs: 4096,
            depth: 1,
            tool,
            mode,
        };
        // sgmap mmap: 1000 commands in 100, 50 (outlier), 100 ms → median 10k/s.
        c.runs.insert(
            key(Tool::Sgmap, "mmap"),
            vec![
                sample(1000, 4096, 100),
                sample(1000, 4096, 50),
                sample(1000, 4096, 100),
            ],
        );
        c.runs.insert(
            key(Tool::Sgmap, "indirect"),
            vec![sample(1000, 4096, 125); 3],
        );
        c.runs
            .insert(key(Tool::SgRead, "mmap"), vec![sample(1000, 4096, 200); 3]);
        c.tur = vec![sample(1000, 0, 50); 3];
        c.copy.insert(4096, vec![sample(1000, 4096, 4); 3]);
        let floors = c.floors(1 << 20);
        assert_eq!(floors.tur_commands_per_s, Some(20_000.0));
        let rows = c.rows();
        let mmap = rows
            .iter()
            .find(|r| r.tool == Tool::Sgmap && r.mode == "mmap")
            .unwrap();
        assert!((mmap.commands_per_s - 10_000.0).abs() < 1e-6);
        assert!((mmap.vs_indirect.unwrap() - 1.25).abs() < 1e-9);
        assert!((mmap.vs_sg_read.unwrap() - 2.0).abs() < 1e-9);
        assert!((mmap.vs_tur.unwrap() - 0.5).abs() < 1e-9);
        assert!((mmap.vs_copy.unwrap() - 0.04).abs() < 1e-9);
        assert_eq!(mmap.vs_fio, None);
        // Per round 10k/5k, 20k/5k, 10k/5k: the spread is 2..4, the median 2.
        assert_eq!(mmap.spreads["vs_sg_read"], [2.0, 4.0]);
        assert_eq!(mmap.spreads["vs_indirect"], [1.25, 2.5]);
        assert!(!mmap.spreads.contains_key("vs_fio"));
        let peer = rows.iter().find(|r| r.tool == Tool::SgRead).unwrap();
        assert_eq!(peer.vs_sg_read, None);
        let indirect = rows
            .iter()
            .find(|r| r.tool == Tool::Sgmap && r.mode == "indirect")
            .unwrap();
        assert_eq!(indirect.vs_indirect, None);
        let t = table(&doc_of(floors, rows));
        assert!(t.contains("TEST UNIT READY 20.0k cmd/s"), "{t}");
        assert!(t.contains("sgmap mmap"), "{t}");
        // mmap asked, indirect counted by the fake samples: the note says so.
        assert!(t.contains("(3000 of 3000 ran otherwise)"), "{t}");
        // mmap against TUR: 0.5, 1.0, 0.5 per round reaches 1.0, a tie;
        // against indirect (1.25..2.5) it is not.
        assert!(t.contains("0.50~") && t.contains(" 1.25 "), "{t}");
    }

    #[test]
    fn a_spread_covering_one_is_a_tie_in_the_table() {
        let mut c = Collected::default();
        let key = |tool, mode| Key {
            dir: "write",
            bs: 4096,
            depth: 1,
            tool,
            mode,
        };
        // sgmap direct vs sg_dd direct: 1.25, 0.8, 1.25 per round.
        c.runs.insert(
            key(Tool::Sgmap, "direct"),
            vec![
                sample(1000, 4096, 80),
                sample(1000, 4096, 125),
                sample(1000, 4096, 80),
            ],
        );
        c.runs
            .insert(key(Tool::SgDd, "direct"), vec![sample(1000, 4096, 100); 3]);
        let rows = c.rows();
        let r = rows.iter().find(|r| r.tool == Tool::Sgmap).unwrap();
        assert!((r.vs_sg_dd.unwrap() - 1.25).abs() < 1e-9);
        let (v, sp) = r.ratio_with_spread("vs_sg_dd").unwrap();
        assert!((v - 1.25).abs() < 1e-9 && (sp[0] - 0.8).abs() < 1e-9);
        assert!(is_tie(sp));
        assert!(!is_tie([1.01, 1.3]) && !is_tie([0.5, 0.99]));
        let t = table(&doc_of(c.floors(1 << 20), rows));
        assert!(t.contains("1.25~"), "{t}");
        assert!(t.contains("~: a tie"), "{t}");
    }
}
