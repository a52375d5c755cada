//! Pictures of a `sgmap bench` document (`sgmap bench --plot`, `sgmap plot`).
//!
//! - [`Picture::Throughput`]: one panel per direction and queue depth,
//!   transfer size against MB/s (or commands/s), both axes logarithmic.
//!   sgmap's modes are solid lines, the peers (sg_read, fio, fio_uring)
//!   dashed, one colour per mode (mmap, direct, indirect, uring) in every
//!   panel; the floors (one memory copy, TEST UNIT READY round trips, the
//!   bare io_uring loop) are thin grey reference lines; a ring and a label
//!   mark the best contender at each size.
//! - [`Picture::Ratios`]: sgmap ÷ sg_read or sg_dd (same mode) and sgmap ÷ fio's sg
//!   engine per mode and size, with the 1.0 line, and the lowest and highest
//!   per-round ratio as error bars.
//!
//! Text is drawn with a TrueType font read from the system (DejaVu Sans,
//! Liberation Sans or FreeSans; `SGMAP_PLOT_FONT=/path/font.ttf` picks
//! another), so no C font library is needed.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Args;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::report::{BenchDoc, Row, Tool};

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a system font as plotters' "sans-serif", once, and returns it.
fn font() -> Result<&'static [u8], String> {
    static DONE: OnceLock<Result<&'static [u8], String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let from_env = std::env::var("SGMAP_PLOT_FONT").ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the program.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(bytes);
                }
            }
        }
        Err(format!(
            "no TrueType font for the plot's text: looked for {} (install fonts-dejavu-core, or set SGMAP_PLOT_FONT=/path/to/font.ttf)",
            FONT_CANDIDATES.join(", ")
        ))
    })
    .clone()
}

/// Which picture to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Picture {
    /// Throughput against transfer size, one panel per direction and depth.
    Throughput,
    /// sgmap ÷ sg_read or sg_dd, and sgmap ÷ fio, per mode and size.
    Ratios,
}

/// What the throughput panels show on their y axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Metric {
    /// MB/s when the sizes span 64× or more, commands/s otherwise.
    #[default]
    Auto,
    /// Megabytes (10^6 bytes) per second.
    Mbps,
    /// Commands per second.
    Cmds,
}

impl Metric {
    /// `Auto` decided for `doc`.
    fn resolve(self, doc: &BenchDoc) -> Metric {
        match self {
            Metric::Auto => {
                let sizes: BTreeSet<usize> = doc.results.iter().map(|r| r.bs).collect();
                match (sizes.first(), sizes.last()) {
                    (Some(&lo), Some(&hi)) if lo > 0 && hi / lo >= 64 => Metric::Mbps,
                    _ => Metric::Cmds,
                }
            }
            m => m,
        }
    }

    fn of(self, r: &Row) -> f64 {
        match self {
            Metric::Mbps => r.mb_per_s,
            _ => r.commands_per_s,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Mbps => "MB/s",
            _ => "commands/s",
        }
    }
}

/// How to draw: the phase's words for the title, and the y axis.
#[derive(Debug, Clone, Default)]
pub(crate) struct Style {
    /// What the run was, for the title (e.g. "sync, scsi_debug delay=0").
    pub label: Option<String>,
    /// The throughput panels' y axis.
    pub metric: Metric,
}

/// The plot options `sgmap bench` and `sgmap plot` share.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct PlotOpts {
    /// Draw throughput against transfer size (one panel per direction and
    /// queue depth, log axes, the best contender marked at each size) into
    /// this .svg or .png; repeat for more files.
    #[arg(long = "plot", value_name = "FILE")]
    pub plot: Vec<PathBuf>,
    /// Draw sgmap ÷ sg_read or sg_dd (same mode) and sgmap ÷ fio per mode and size,
    /// with the per-round spread as error bars, into this .svg or .png;
    /// repeat for more files.
    #[arg(long = "plot-ratios", value_name = "FILE")]
    pub ratios: Vec<PathBuf>,
    /// What the run was, for the plots' titles (e.g. "sync, scsi_debug delay=0").
    #[arg(long = "plot-label", value_name = "TEXT")]
    pub label: Option<String>,
    /// The throughput plot's y axis.
    #[arg(long = "plot-metric", value_enum, default_value_t = Metric::Auto)]
    pub metric: Metric,
}

impl PlotOpts {
    /// Whether any plot was asked for.
    pub(crate) fn any(&self) -> bool {
        !self.plot.is_empty() || !self.ratios.is_empty()
    }

    /// Draws every picture asked for; the error names the file and the option.
    pub(crate) fn draw_all(&self, doc: &BenchDoc) -> Result<Vec<PathBuf>, String> {
        let style = Style {
            label: self.label.clone(),
            metric: self.metric,
        };
        let mut done = Vec::new();
        let jobs = self
            .plot
            .iter()
            .map(|p| ("--plot", Picture::Throughput, p))
            .chain(
                self.ratios
                    .iter()
                    .map(|p| ("--plot-ratios", Picture::Ratios, p)),
            );
        for (flag, picture, path) in jobs {
            draw(doc, picture, &style, path)
                .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
            done.push(path.clone());
        }
        Ok(done)
    }
}

/// `sgmap plot` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct PlotArgs {
    /// A document `sgmap bench --json` printed, or the compare.json of
    /// `cargo xtask compare` (then --phase picks the phase).
    pub json: PathBuf,
    /// In a compare.json: the phase to draw (sync, latency, ...).
    #[arg(long)]
    pub phase: Option<String>,
    #[command(flatten)]
    pub plots: PlotOpts,
}

/// `sgmap plot`: draws the pictures of a saved bench document.
pub(crate) fn run(args: &PlotArgs) -> crate::Result<()> {
    let name = args.json.display();
    if !args.plots.any() {
        return Err(format!(
            "plot {name}: nothing to draw: give --plot FILE.png|svg and/or --plot-ratios FILE.png|svg"
        )
        .into());
    }
    let text = std::fs::read_to_string(&args.json)
        .map_err(|e| format!("plot {name}: cannot read it: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!("plot {name}: not JSON ({e}); give what `sgmap bench --json` printed")
    })?;
    let value =
        pick_phase(value, args.phase.as_deref()).map_err(|e| format!("plot {name}: {e}"))?;
    let doc: BenchDoc = serde_json::from_value(value)
        .map_err(|e| format!("plot {name}: not a document of `sgmap bench --json` ({e})"))?;
    let drawn = args
        .plots
        .draw_all(&doc)
        .map_err(|e| format!("plot {name}: {e}"))?;
    for p in drawn {
        println!("plot: {}", p.display());
    }
    Ok(())
}

/// The bench document in `value`: itself, or in a compare.json (an object
/// with `phases`) the one `phase` names, with the wrapper's kernel when the
/// phase's own document predates the field.
fn pick_phase(value: serde_json::Value, phase: Option<&str>) -> Result<serde_json::Value, String> {
    let Some(phases) = value.get("phases").and_then(|p| p.as_object()) else {
        return match phase {
            Some(p) => Err(format!(
                "--phase {p} is for a compare.json; this is one bench document"
            )),
            None => Ok(value),
        };
    };
    let names = phases.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(p) = phase else {
        return Err(format!(
            "it holds the phases {names}: pick one with --phase"
        ));
    };
    let mut doc = phases
        .get(p)
        .cloned()
        .ok_or_else(|| format!("no phase {p} in it (it holds {names})"))?;
    let own = doc.get("kernel").and_then(|k| k.as_str()).unwrap_or("");
    if let (true, Some(k), Some(obj)) = (own.is_empty(), value.get("kernel"), doc.as_object_mut()) {
        obj.insert("kernel".into(), k.clone());
    }
    Ok(doc)
}

/// Draws `picture` of `doc` into `path`, as SVG or PNG by the extension.
pub(crate) fn draw(
    doc: &BenchDoc,
    picture: Picture,
    style: &Style,
    path: &Path,
) -> Result<(), String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("svg" | "png")) {
        return Err("the plot file must end in .svg or .png".into());
    }
    let grid = match picture {
        Picture::Throughput => throughput_grid(doc),
        Picture::Ratios => ratio_grid(doc),
    };
    if grid.iter().all(Vec::is_empty) {
        return Err(match picture {
            Picture::Throughput => "the document holds no results to plot".into(),
            Picture::Ratios => {
                "the document holds no sgmap row with an sg_read or fio row beside it (run the bench with --peers)"
                    .into()
            }
        });
    }
    let svg = ext.as_deref() == Some("svg");
    let ink = Ink::new(!svg)?;
    let cols = grid.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let legend_rows = legend_layout(&ink, &legend(doc, picture), cols * PANEL_W)
        .last()
        .map_or(1, |p| p.1 + 1) as u32;
    let size = (
        cols * PANEL_W,
        TITLE_H + legend_rows * LEGEND_ROW_H + 8 + grid.len() as u32 * PANEL_H,
    );
    if svg {
        let root = SVGBackend::new(path, size).into_drawing_area();
        render(&ink, &root, doc, picture, style, &grid)?;
        root.present().map_err(|e| e.to_string())
    } else {
        let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            render(&ink, &root, doc, picture, style, &grid)?;
            root.present().map_err(|e| e.to_string())?;
        }
        write_png(path, size, &rgb)
    }
}

fn write_png(path: &Path, (w, h): (u32, u32), rgb: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create it: {e}"))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

const PANEL_W: u32 = 640;
const PANEL_H: u32 = 470;
const TITLE_H: u32 = 58;
const LEGEND_ROW_H: u32 = 24;

// ---------------------------------------------------------------------------
// What to draw (no drawing here: the tests check these).

/// One panel: a direction and a queue depth, and for ratio panels the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Panel {
    dir: String,
    depth: usize,
    peer: Option<Tool>,
}

fn dirs(doc: &BenchDoc) -> Vec<String> {
    // "read" sorts before "write"; any other direction after them.
    let d: BTreeSet<&str> = doc.results.iter().map(|r| r.dir.as_str()).collect();
    d.into_iter().map(str::to_string).collect()
}

/// Rows of throughput panels: one row per direction, one panel per depth.
fn throughput_grid(doc: &BenchDoc) -> Vec<Vec<Panel>> {
    dirs(doc)
        .into_iter()
        .map(|dir| {
            let depths: BTreeSet<usize> = doc
                .results
                .iter()
                .filter(|r| r.dir == dir)
                .map(|r| r.depth)
                .collect();
            depths
                .into_iter()
                .map(|depth| Panel {
                    dir: dir.clone(),
                    depth,
                    peer: None,
                })
                .collect()
        })
        .collect()
}

/// The peers sgmap is divided by in the ratio picture.
const RATIO_PEERS: [Tool; 3] = [Tool::SgRead, Tool::SgDd, Tool::Fio];

/// Rows of ratio panels: one row per direction and peer, one panel per
/// depth where that peer ran beside sgmap.
fn ratio_grid(doc: &BenchDoc) -> Vec<Vec<Panel>> {
    let mut grid = Vec::new();
    for dir in dirs(doc) {
        for peer in RATIO_PEERS {
            let depths: BTreeSet<usize> = doc
                .results
                .iter()
                .filter(|r| r.dir == dir && r.tool == Tool::Sgmap)
                .map(|r| r.depth)
                .collect();
            let row: Vec<Panel> = depths
                .into_iter()
                .filter(|&depth| !ratios(doc, peer, &dir, depth).is_empty())
                .map(|depth| Panel {
                    dir: dir.clone(),
                    depth,
                    peer: Some(peer),
                })
                .collect();
            if !row.is_empty() {
                grid.push(row);
            }
        }
    }
    grid
}

/// A contender: who and in which mode.
type Who = (Tool, String);

fn tool_order(t: Tool) -> u8 {
    match t {
        Tool::Sgmap => 0,
        Tool::SgRead => 1,
        Tool::SgDd => 2,
        Tool::Fio => 3,
        Tool::FioUring => 4,
        Tool::Bare => 5,
    }
}

fn mode_order(m: &str) -> u8 {
    match m {
        "mmap" => 0,
        "direct" => 1,
        "indirect" => 2,
        "uring" => 3,
        _ => 4,
    }
}

fn who_key(w: &Who) -> (u8, u8, String) {
    (tool_order(w.0), mode_order(&w.1), w.1.clone())
}

/// One line of a throughput panel: (size in bytes, value), by size.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    who: Who,
    points: Vec<(usize, f64)>,
}

/// The contenders' lines of one panel (the bare io_uring loop is a
/// reference, see [`references`]).
fn lines(doc: &BenchDoc, dir: &str, depth: usize, metric: Metric) -> Vec<Line> {
    let mut whos: Vec<Who> = doc
        .results
        .iter()
        .filter(|r| r.dir == dir && r.depth == depth && r.tool != Tool::Bare)
        .map(|r| (r.tool, r.mode.clone()))
        .collect();
    whos.sort_by_key(who_key);
    whos.dedup();
    whos.into_iter()
        .map(|who| {
            let mut points: Vec<(usize, f64)> = doc
                .results
                .iter()
                .filter(|r| r.dir == dir && r.depth == depth && r.tool == who.0 && r.mode == who.1)
                .map(|r| (r.bs, metric.of(r)))
                .filter(|p| p.1 > 0.0 && p.1.is_finite())
                .collect();
            points.sort_by_key(|p| p.0);
            Line { who, points }
        })
        .filter(|l| !l.points.is_empty())
        .collect()
}

/// The best contender at one size, and by how much.
#[derive(Debug, Clone, PartialEq)]
struct Best {
    bs: usize,
    who: Who,
    commands_per_s: f64,
    /// best ÷ the runner-up (`None`: it ran alone).
    margin: Option<f64>,
}

/// The best contender at each size of one panel, by commands per second
/// (the same order as MB/s at one size); the bare io_uring loop is a floor,
/// not a contender.
fn winners(doc: &BenchDoc, dir: &str, depth: usize) -> Vec<Best> {
    let sizes: BTreeSet<usize> = doc
        .results
        .iter()
        .filter(|r| r.dir == dir && r.depth == depth)
        .map(|r| r.bs)
        .collect();
    let mut out = Vec::new();
    for bs in sizes {
        let mut at: Vec<&Row> = doc
            .results
            .iter()
            .filter(|r| {
                r.dir == dir
                    && r.depth == depth
                    && r.bs == bs
                    && r.tool != Tool::Bare
                    && r.commands_per_s.is_finite()
                    && r.commands_per_s > 0.0
            })
            .collect();
        at.sort_by(|a, b| b.commands_per_s.total_cmp(&a.commands_per_s));
        if let Some(first) = at.first() {
            out.push(Best {
                bs,
                who: (first.tool, first.mode.clone()),
                commands_per_s: first.commands_per_s,
                margin: at
                    .get(1)
                    .map(|second| first.commands_per_s / second.commands_per_s),
            });
        }
    }
    out
}

/// A floor drawn as a thin grey line.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    label: &'static str,
    points: Vec<(usize, f64)>,
}

/// The floors of one panel in `metric`: one memory copy of each size, TEST
/// UNIT READY round trips (taken at depth 1), the bare io_uring loop.
fn references(doc: &BenchDoc, dir: &str, depth: usize, metric: Metric) -> Vec<Reference> {
    let sizes: BTreeSet<usize> = doc
        .results
        .iter()
        .filter(|r| r.dir == dir && r.depth == depth)
        .map(|r| r.bs)
        .collect();
    let mut out = Vec::new();
    let copy: Vec<(usize, f64)> = doc
        .floors
        .copy
        .iter()
        .filter(|c| sizes.contains(&c.bs) && c.mb_per_s > 0.0)
        .map(|c| {
            let v = match metric {
                Metric::Mbps => c.mb_per_s,
                _ => c.mb_per_s * 1e6 / c.bs as f64,
            };
            (c.bs, v)
        })
        .collect();
    if !copy.is_empty() {
        out.push(Reference {
            label: "one memory copy",
            points: copy,
        });
    }
    if let Some(tur) = doc.floors.tur_commands_per_s.filter(|t| *t > 0.0) {
        out.push(Reference {
            label: "TEST UNIT READY, depth 1",
            points: sizes
                .iter()
                .map(|&bs| {
                    let v = match metric {
                        Metric::Mbps => tur * bs as f64 / 1e6,
                        _ => tur,
                    };
                    (bs, v)
                })
                .collect(),
        });
    }
    let mut bare: Vec<(usize, f64)> = doc
        .results
        .iter()
        .filter(|r| r.dir == dir && r.depth == depth && r.tool == Tool::Bare)
        .map(|r| (r.bs, metric.of(r)))
        .filter(|p| p.1 > 0.0)
        .collect();
    bare.sort_by_key(|p| p.0);
    if !bare.is_empty() {
        out.push(Reference {
            label: "bare io_uring loop",
            points: bare,
        });
    }
    out
}

/// The median, lowest and highest of the per-round ratios `a[i] / b[i]`
/// (the rounds are interleaved: round `i` of each ran side by side); `None`
/// when the rounds do not pair up.
fn per_round(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let mut r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **y > 0.0 && x.is_finite() && y.is_finite())
        .map(|(x, y)| x / y)
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let median = if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    };
    Some((median, r[0], r[n - 1]))
}

/// One point of a ratio line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RatioPoint {
    bs: usize,
    median: f64,
    /// The per-round spread (`None`: the rounds did not pair up, the point
    /// is the ratio of the medians).
    spread: Option<(f64, f64)>,
}

/// sgmap ÷ `peer` in commands per second, per sgmap mode and size: sg_read
/// and sg_dd in the same mode, fio in whatever mode it ran (its sg engine:
/// indirect).
fn ratios(doc: &BenchDoc, peer: Tool, dir: &str, depth: usize) -> Vec<(String, Vec<RatioPoint>)> {
    let mut modes: Vec<&str> = doc
        .results
        .iter()
        .filter(|r| r.tool == Tool::Sgmap && r.dir == dir && r.depth == depth)
        .map(|r| r.mode.as_str())
        .collect();
    modes.sort_by_key(|m| (mode_order(m), m.to_string()));
    modes.dedup();
    let mut out = Vec::new();
    for mode in modes {
        let mut pts = Vec::new();
        for a in doc
            .results
            .iter()
            .filter(|r| r.tool == Tool::Sgmap && r.mode == mode && r.dir == dir && r.depth == depth)
        {
            let b = doc.results.iter().find(|b| {
                b.tool == peer
                    && b.dir == dir
                    && b.depth == depth
                    && b.bs == a.bs
                    && (!matches!(peer, Tool::SgRead | Tool::SgDd) || b.mode == mode)
            });
            let Some(b) = b else { continue };
            let point = match per_round(&a.samples_commands_per_s, &b.samples_commands_per_s) {
                Some((median, lo, hi)) => RatioPoint {
                    bs: a.bs,
                    median,
                    spread: Some((lo, hi)),
                },
                None if b.commands_per_s > 0.0 && a.commands_per_s > 0.0 => RatioPoint {
                    bs: a.bs,
                    median: a.commands_per_s / b.commands_per_s,
                    spread: None,
                },
                None => continue,
            };
            pts.push(point);
        }
        pts.sort_by_key(|p| p.bs);
        if !pts.is_empty() {
            out.push((mode.to_string(), pts));
        }
    }
    out
}

/// Axis values at "nice" places of a log axis from `lo` to `hi`: the first
/// mantissa set that gives at least six, or the finest.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const SETS: [&[f64]; 5] = [
        &[1.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
        &[1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
        &[
            1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
        ],
    ];
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return vec![];
    }
    let mut best = vec![];
    for set in SETS {
        let mut t = vec![];
        let mut decade = lo.log10().floor() as i32;
        while 10f64.powi(decade) <= hi * 1.000_001 {
            for m in set {
                let v = m * 10f64.powi(decade);
                if v >= lo * 0.999_999 && v <= hi * 1.000_001 {
                    t.push(v);
                }
            }
            decade += 1;
        }
        let enough = t.len() >= 6;
        best = t;
        if enough {
            break;
        }
    }
    best
}

/// The largest nice value (1, 2 or 5 × 10^k) at or below `v`.
fn nice_down(v: f64) -> f64 {
    let d = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .iter()
        .map(|m| m * d)
        .find(|x| *x <= v * 1.000_001)
        .unwrap_or(d)
}

/// The smallest nice value (1, 2 or 5 × 10^k) at or above `v`.
fn nice_up(v: f64) -> f64 {
    let d = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * d)
        .find(|x| *x >= v * 0.999_999)
        .unwrap_or(10.0 * d)
}

/// A log axis' range over `values`, rounded out to nice values, with
/// `headroom` (a factor) above the largest; `None` without a positive value.
fn log_range(values: impl IntoIterator<Item = f64>, headroom: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values {
        if v > 0.0 && v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo > hi {
        return None;
    }
    let (lo, hi) = (nice_down(lo * 0.9), nice_up(hi * headroom));
    Some(if hi > lo {
        (lo, hi)
    } else {
        (lo / 2.0, hi * 2.0)
    })
}

/// How far beyond the contenders' values a floor may reach and still set
/// the axis (a factor): beyond it the floor is noted, not drawn.
const FLOOR_REACH: f64 = 3.0;

/// The y range of a throughput panel: its lines, and each floor that lies
/// within [`FLOOR_REACH`] of them. Returns the range and the floors left out.
fn throughput_range(lines: &[Line], refs: &[Reference]) -> Option<((f64, f64), Vec<String>)> {
    let data = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (dlo, dhi) = data
        .clone()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if dlo > dhi {
        return None;
    }
    let mut values: Vec<f64> = data.collect();
    let mut left_out = Vec::new();
    for r in refs {
        let (rlo, rhi) = r.points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        // A floor crossing the data (TEST UNIT READY in MB/s rises with the
        // size) is drawn where it is in range.
        if rlo <= dhi * FLOOR_REACH && rhi >= dlo / FLOOR_REACH {
            values.extend(
                r.points
                    .iter()
                    .map(|p| p.1)
                    .filter(|v| *v <= dhi * FLOOR_REACH && *v >= dlo / FLOOR_REACH),
            );
        } else {
            left_out.push(r.label.to_string());
        }
    }
    log_range(values, 2.2).map(|r| (r, left_out))
}

/// The y range of a ratio panel: every median and spread, and 1.0.
fn ratio_range(lines: &[(String, Vec<RatioPoint>)]) -> (f64, f64) {
    let vals = lines.iter().flat_map(|(_, pts)| {
        pts.iter().flat_map(|p| {
            let (lo, hi) = p.spread.unwrap_or((p.median, p.median));
            [p.median, lo, hi]
        })
    });
    let (lo, hi) = vals
        .chain([1.0])
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Some room on both sides, and never narrower than 0.8–1.25.
    ((lo / 1.15).min(0.8), (hi * 1.15).max(1.25))
}

/// Clips a polyline in (log x, log y) to `lo..hi` in y: the pieces inside.
fn clip(points: &[(f64, f64)], lo: f64, hi: f64) -> Vec<Vec<(f64, f64)>> {
    let inside = |y: f64| y >= lo && y <= hi;
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        if i > 0 {
            let q = points[i - 1];
            // Where the segment q→p crosses each bound, in order along it.
            let mut cuts: Vec<(f64, (f64, f64))> = [lo, hi]
                .iter()
                .filter(|b| (q.1 - **b) * (p.1 - **b) < 0.0)
                .map(|&b| {
                    let t = (b - q.1) / (p.1 - q.1);
                    (t, (q.0 + t * (p.0 - q.0), b))
                })
                .collect();
            cuts.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, c) in cuts {
                if cur.is_empty() {
                    cur.push(c);
                } else {
                    cur.push(c);
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
        if inside(p.1) {
            cur.push(p);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|l| !l.is_empty());
    out
}

/// A transfer size for an axis: `4K`, `64K`, `1M`, `1.25M`.
fn size_label(bs: usize) -> String {
    let (v, unit) = if bs >= 1 << 20 {
        (bs as f64 / (1u64 << 20) as f64, "M")
    } else if bs >= 1 << 10 {
        (bs as f64 / 1024.0, "K")
    } else {
        (bs as f64, "B")
    };
    format!("{}{unit}", trim(v))
}

/// A number without trailing zeros: 1, 1.5, 1.25.
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A value for the y axis: `500`, `20k`, `1.5M`; MB/s as `500 MB/s`, `2 GB/s`.
fn value_label(v: f64, metric: Metric) -> String {
    match metric {
        Metric::Mbps if v >= 1000.0 => format!("{} GB/s", trim(v / 1000.0)),
        Metric::Mbps => format!("{} MB/s", trim(v)),
        _ if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        _ if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        _ => trim(v),
    }
}

/// How far ahead the best is: ` +0.4%`, ` +23%`, ` ×3.1`; empty when alone.
fn margin_words(margin: Option<f64>) -> String {
    match margin {
        None => String::new(),
        Some(m) if m >= 2.0 => format!(" ×{}", trim((m * 10.0).round() / 10.0)),
        Some(m) if m < 1.01 => format!(" +{:.1}%", (m - 1.0) * 100.0),
        Some(m) => format!(" +{:.0}%", (m - 1.0) * 100.0),
    }
}

fn who_name(w: &Who) -> String {
    format!("{} {}", w.0.name(), w.1)
}

// ---------------------------------------------------------------------------
// Drawing.

/// A mode's colour, the same in every panel and picture.
fn mode_color(mode: &str) -> RGBColor {
    match mode {
        "mmap" => RGBColor(31, 100, 200),
        "direct" => RGBColor(230, 100, 0),
        "indirect" => RGBColor(30, 150, 60),
        "uring" => RGBColor(150, 40, 170),
        _ => RGBColor(120, 90, 60),
    }
}

const GREY: RGBColor = RGBColor(140, 140, 140);
const DARK_GREY: RGBColor = RGBColor(95, 95, 95);

type E<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;

/// How a piece of text looks and where it hangs from its anchor point.
#[derive(Clone, Copy)]
struct Look {
    size: f32,
    color: RGBColor,
    h: HPos,
    v: VPos,
    /// Turned to read bottom to top (the y axis' name).
    up: bool,
}

fn look(size: f32, color: RGBColor, h: HPos, v: VPos) -> Look {
    Look {
        size,
        color,
        h,
        v,
        up: false,
    }
}

/// Text for both backends. SVG gets plotters' text (the viewer lays it
/// out); on bitmaps the glyphs are laid out here with ab_glyph, as
/// plotters' bitmap text drops each glyph's side bearing and the words run
/// together.
struct Ink {
    raster: bool,
    font: FontRef<'static>,
}

impl Ink {
    fn new(raster: bool) -> Result<Ink, String> {
        let bytes = font()?;
        let font = FontRef::try_from_slice(bytes)
            .map_err(|e| format!("the plot's font cannot be read: {e}"))?;
        Ok(Ink { raster, font })
    }

    /// ab_glyph's scale for an em of `size` pixels (what `font-size` means in SVG).
    fn scale(&self, size: f32) -> PxScale {
        let em = self.font.units_per_em().unwrap_or(2048.0);
        PxScale::from(size * self.font.height_unscaled() / em)
    }

    /// Width and height of `text` in pixels.
    fn measure(&self, text: &str, size: f32) -> (i32, i32) {
        let f = self.font.as_scaled(self.scale(size));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = f.glyph_id(c);
            if let Some(p) = prev {
                w += f.kern(p, id);
            }
            w += f.h_advance(id);
            prev = Some(id);
        }
        (w.ceil() as i32, (f.ascent() - f.descent()).ceil() as i32)
    }

    fn text<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        text: &str,
        at: (i32, i32),
        l: Look,
    ) -> Result<(), E<DB>> {
        if !self.raster {
            let mut style = TextStyle::from(("sans-serif", f64::from(l.size)).into_font())
                .color(&l.color)
                .pos(Pos::new(l.h, l.v));
            if l.up {
                style = style.transform(FontTransform::Rotate270);
            }
            return area.draw(&Text::new(text.to_string(), at, style));
        }
        let (w, h) = self.measure(text, l.size);
        let dx = match l.h {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match l.v {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let scale = self.scale(l.size);
        let f = self.font.as_scaled(scale);
        let mut pen = 0.0f32;
        let mut prev = None;
        let mut pixels = Vec::new();
        for c in text.chars() {
            let id = f.glyph_id(c);
            if let Some(p) = prev {
                pen += f.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, f.ascent()));
            if let Some(g) = self.font.outline_glyph(glyph) {
                let b = g.px_bounds();
                g.draw(|x, y, cover| {
                    let lx = b.min.x as i32 + x as i32 + dx;
                    let ly = b.min.y as i32 + y as i32 + dy;
                    pixels.push((lx, ly, cover));
                });
            }
            pen += f.h_advance(id);
        }
        for (lx, ly, cover) in pixels {
            if cover <= 0.01 {
                continue;
            }
            let p = if l.up {
                (at.0 + ly, at.1 - lx)
            } else {
                (at.0 + lx, at.1 + ly)
            };
            area.draw_pixel(p, &l.color.mix(f64::from(cover.min(1.0))))?;
        }
        Ok(())
    }
}

/// What a legend entry shows.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Contender(Who),
    Floor(&'static str),
    Best,
    Mode(String),
    Spread,
}

impl Entry {
    fn text(&self) -> String {
        match self {
            Entry::Contender(who) => who_name(who),
            Entry::Floor(label) => format!("{label} (floor)"),
            Entry::Best => "best at that size (+% over the next)".into(),
            Entry::Mode(mode) => format!("sgmap {mode}"),
            Entry::Spread => "lowest–highest round".into(),
        }
    }
}

fn legend(doc: &BenchDoc, picture: Picture) -> Vec<Entry> {
    match picture {
        Picture::Throughput => {
            let mut whos: Vec<Who> = doc
                .results
                .iter()
                .filter(|r| r.tool != Tool::Bare)
                .map(|r| (r.tool, r.mode.clone()))
                .collect();
            whos.sort_by_key(who_key);
            whos.dedup();
            let mut e: Vec<Entry> = whos.into_iter().map(Entry::Contender).collect();
            let mut floors: Vec<&'static str> = Vec::new();
            for p in throughput_grid(doc).iter().flatten() {
                for r in references(doc, &p.dir, p.depth, Metric::Cmds) {
                    if !floors.contains(&r.label) {
                        floors.push(r.label);
                    }
                }
            }
            e.extend(floors.into_iter().map(Entry::Floor));
            e.push(Entry::Best);
            e
        }
        Picture::Ratios => {
            let mut modes: Vec<String> = ratio_grid(doc)
                .iter()
                .flatten()
                .flat_map(|p| {
                    ratios(doc, p.peer.unwrap_or(Tool::Fio), &p.dir, p.depth)
                        .into_iter()
                        .map(|(m, _)| m)
                })
                .collect();
            modes.sort_by_key(|m| (mode_order(m), m.clone()));
            modes.dedup();
            let mut e: Vec<Entry> = modes.into_iter().map(Entry::Mode).collect();
            e.push(Entry::Spread);
            e
        }
    }
}

const LEGEND_SAMPLE: i32 = 34;
const LEGEND_FONT: f32 = 15.0;

/// Where each legend entry goes in a strip `width` wide: (x, row).
fn legend_layout(ink: &Ink, entries: &[Entry], width: u32) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    let (mut x, mut row) = (20, 0);
    for e in entries {
        let w = LEGEND_SAMPLE + 8 + ink.measure(&e.text(), LEGEND_FONT).0 + 28;
        if x > 20 && x + w > width as i32 - 10 {
            x = 20;
            row += 1;
        }
        out.push((x, row));
        x += w;
    }
    out
}

/// A contender's marker, centred on `c` (pixels): sgmap a disc, sg_read a
/// triangle, sg_dd a triangle pointing down, fio a square, fio_uring a
/// diamond.
fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    tool: Tool,
    c: (i32, i32),
    color: RGBColor,
) -> Result<(), E<DB>> {
    let s = color.filled();
    let (x, y) = c;
    match tool {
        Tool::Sgmap => area.draw(&Circle::new(c, 4, s)),
        Tool::SgRead => area.draw(&TriangleMarker::new(c, 5, s)),
        Tool::SgDd => area.draw(&Polygon::new(
            vec![(x - 5, y - 4), (x + 5, y - 4), (x, y + 5)],
            s,
        )),
        Tool::Fio => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], s)),
        Tool::FioUring => area.draw(&Polygon::new(
            vec![(x, y - 7), (x + 7, y), (x, y + 7), (x - 7, y)],
            s,
        )),
        Tool::Bare => area.draw(&Cross::new(c, 4, GREY.stroke_width(2))),
    }
}

fn dashed<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: Vec<(i32, i32)>,
    (dash, gap): (i32, i32),
    style: ShapeStyle,
) -> Result<(), E<DB>> {
    area.draw(&plotters::element::DashedPathElement::new(
        pts, dash, gap, style,
    ))
}

fn draw_legend<DB: DrawingBackend>(
    ink: &Ink,
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> Result<(), E<DB>> {
    let (w, _) = area.dim_in_pixel();
    let text = look(LEGEND_FONT, BLACK, HPos::Left, VPos::Center);
    for (e, (x, row)) in entries.iter().zip(legend_layout(ink, entries, w)) {
        let y = row * LEGEND_ROW_H as i32 + LEGEND_ROW_H as i32 / 2;
        let seg = vec![(x, y), (x + LEGEND_SAMPLE, y)];
        let mid = (x + LEGEND_SAMPLE / 2, y);
        match e {
            Entry::Contender(who) => {
                let color = mode_color(&who.1);
                if who.0 == Tool::Sgmap {
                    area.draw(&PathElement::new(seg, color.stroke_width(3)))?;
                } else {
                    dashed(area, seg, dash_of(who.0), color.stroke_width(2))?;
                }
                marker(area, who.0, mid, color)?;
            }
            Entry::Floor(label) => floor_line(area, label, seg)?,
            Entry::Best => area.draw(&Circle::new(mid, 8, BLACK.stroke_width(2)))?,
            Entry::Mode(mode) => {
                let color = mode_color(mode);
                area.draw(&PathElement::new(seg, color.stroke_width(3)))?;
                area.draw(&Circle::new(mid, 4, color.filled()))?;
            }
            Entry::Spread => {
                area.draw(&PathElement::new(
                    vec![(mid.0, y - 8), (mid.0, y + 8)],
                    BLACK.stroke_width(1),
                ))?;
                for dy in [-8, 8] {
                    area.draw(&PathElement::new(
                        vec![(mid.0 - 4, y + dy), (mid.0 + 4, y + dy)],
                        BLACK.stroke_width(1),
                    ))?;
                }
            }
        }
        ink.text(area, &e.text(), (x + LEGEND_SAMPLE + 8, y), text)?;
    }
    Ok(())
}

/// A peer's dashes (dash, gap in pixels): each peer its own.
fn dash_of(tool: Tool) -> (i32, i32) {
    match tool {
        Tool::SgRead | Tool::SgDd => (7, 4),
        Tool::Fio => (3, 3),
        _ => (12, 5),
    }
}

/// A floor's line: thin grey, solid for the memory copy, long dashes for
/// TEST UNIT READY, dots for the bare io_uring loop.
fn floor_line<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    pts: Vec<(i32, i32)>,
) -> Result<(), E<DB>> {
    match label {
        "bare io_uring loop" => dashed(area, pts, (2, 3), GREY.stroke_width(2)),
        "one memory copy" => area.draw(&PathElement::new(pts, GREY.stroke_width(1))),
        _ => dashed(area, pts, (12, 4), GREY.stroke_width(1)),
    }
}

/// A linear axis (over log values) ticked exactly where asked.
#[derive(Debug, Clone)]
struct Axis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let t = if span > 0.0 {
            (v - self.range.start) / span
        } else {
            0.5
        };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// The x axis of a panel in log2 of KiB, over `sizes`, ticked at each size.
fn x_axis(sizes: &BTreeSet<usize>) -> (Range<f64>, Vec<f64>) {
    let xs: Vec<f64> = sizes.iter().map(|&b| lx(b)).collect();
    let lo = xs.first().copied().unwrap_or(0.0);
    let hi = xs.last().copied().unwrap_or(1.0);
    (lo - 0.5..hi + 0.6, xs)
}

fn lx(bs: usize) -> f64 {
    (bs as f64 / 1024.0).log2()
}

/// A panel's frame: caption, grid, tick labels (sizes under the x axis, a
/// line lower where two would touch; `ylabel` at each y tick) and the axes'
/// names. Returns the chart to draw into.
#[allow(clippy::too_many_arguments)]
fn frame<'a, DB: DrawingBackend>(
    ink: &Ink,
    root: &DrawingArea<DB, Shift>,
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    sizes: &BTreeSet<usize>,
    y: Axis,
    ylabel: &dyn Fn(f64) -> String,
    yname: &str,
    bottom: u32,
) -> Result<Chart<'a, DB>, E<DB>> {
    let (xr, xticks) = x_axis(sizes);
    let yticks = y.ticks.clone();
    let ylo = y.range.start;
    let mut chart = ChartBuilder::on(area)
        .margin_top(34)
        .margin_left(30)
        .margin_right(18)
        .margin_bottom(bottom)
        .x_label_area_size(50)
        .y_label_area_size(74)
        .build_cartesian_2d(
            Axis {
                range: xr,
                ticks: xticks,
            },
            y,
        )?;
    chart
        .configure_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new())
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let (xpix, ypix) = chart.plotting_area().get_pixel_range();
    let (apx, apy) = area.get_pixel_range();
    ink.text(
        root,
        caption,
        ((apx.start + apx.end) / 2, apy.start + 8),
        look(19.0, BLACK, HPos::Center, VPos::Top),
    )?;
    let tick = look(14.0, BLACK, HPos::Right, VPos::Center);
    for t in &yticks {
        let (_, py) = chart.backend_coord(&(0.0, *t));
        ink.text(root, &ylabel(*t), (xpix.start - 6, py), tick)?;
    }
    let size_look = look(14.0, BLACK, HPos::Center, VPos::Top);
    let mut last_right = i32::MIN;
    let mut lowered = false;
    for &bs in sizes {
        let (px, py) = chart.backend_coord(&(lx(bs), ylo));
        let text = size_label(bs);
        let w = ink.measure(&text, 14.0).0;
        lowered = !lowered && px - w / 2 < last_right + 4;
        if !lowered {
            last_right = px + w / 2;
        }
        let dy = if lowered { 22 } else { 6 };
        ink.text(root, &text, (px, py + dy), size_look)?;
    }
    ink.text(
        root,
        "transfer size",
        ((xpix.start + xpix.end) / 2, ypix.end + 28),
        look(15.0, DARK_GREY, HPos::Left, VPos::Top),
    )?;
    ink.text(
        root,
        yname,
        (apx.start + 10, (ypix.start + ypix.end) / 2),
        Look {
            up: true,
            ..look(15.0, DARK_GREY, HPos::Center, VPos::Top)
        },
    )?;
    Ok(chart)
}

fn render<DB: DrawingBackend>(
    ink: &Ink,
    root: &DrawingArea<DB, Shift>,
    doc: &BenchDoc,
    picture: Picture,
    style: &Style,
    grid: &[Vec<Panel>],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: E<DB>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let metric = style.metric.resolve(doc);
    let (title, rest) = root.split_vertically(TITLE_H);
    let kernel = if doc.kernel.is_empty() {
        "kernel not recorded".to_string()
    } else {
        format!("Linux {}", doc.kernel)
    };
    let phase = style
        .label
        .as_deref()
        .map_or(String::new(), |l| format!("{l} — "));
    let what = match picture {
        Picture::Throughput => format!("{}, higher is better", metric.name()),
        Picture::Ratios => "sgmap ÷ peer in commands/s (above 1: sgmap faster)".into(),
    };
    ink.text(
        &title,
        &format!("{phase}{kernel}: {what}"),
        (16, 8),
        look(21.0, BLACK, HPos::Left, VPos::Top),
    )
    .map_err(e)?;
    let sub = match picture {
        Picture::Throughput => format!(
            "sgmap bench on {}: medians of {} interleaved rounds of ~{} ms per contender; both axes log",
            doc.device, doc.rounds, doc.run_ms
        ),
        Picture::Ratios => format!(
            "sgmap bench on {}: median of the {} per-round ratios (contenders of one round ran side by side); log axes",
            doc.device, doc.rounds
        ),
    };
    ink.text(
        &title,
        &sub,
        (16, 36),
        look(15.0, DARK_GREY, HPos::Left, VPos::Top),
    )
    .map_err(e)?;
    let entries = legend(doc, picture);
    let (w, _) = rest.dim_in_pixel();
    let rows = legend_layout(ink, &entries, w)
        .last()
        .map_or(1, |p| p.1 + 1) as u32;
    let (legend_area, body) = rest.split_vertically(rows * LEGEND_ROW_H + 8);
    draw_legend(ink, &legend_area, &entries).map_err(e)?;
    let rows = body.split_evenly((grid.len().max(1), 1));
    for (panels, row_area) in grid.iter().zip(rows.iter()) {
        let (pw, ph) = row_area.dim_in_pixel();
        let mut x = 0;
        for panel in panels {
            let area = row_area.clone().shrink((x, 0), (PANEL_W.min(pw - x), ph));
            x += PANEL_W;
            match picture {
                Picture::Throughput => throughput_panel(ink, root, &area, doc, panel, metric),
                Picture::Ratios => ratio_panel(ink, root, &area, doc, panel),
            }
            .map_err(e)?;
        }
    }
    Ok(())
}

fn dir_words(dir: &str) -> String {
    format!("{dir}s")
}

fn throughput_panel<DB: DrawingBackend>(
    ink: &Ink,
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    doc: &BenchDoc,
    panel: &Panel,
    metric: Metric,
) -> Result<(), E<DB>> {
    let lines = lines(doc, &panel.dir, panel.depth, metric);
    let refs = references(doc, &panel.dir, panel.depth, metric);
    let Some(((ylo, yhi), left_out)) = throughput_range(&lines, &refs) else {
        return Ok(());
    };
    let sizes: BTreeSet<usize> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .collect();
    let (lylo, lyhi) = (ylo.log10(), yhi.log10());
    let chart = frame(
        ink,
        root,
        area,
        &format!("{}, queue depth {}", dir_words(&panel.dir), panel.depth),
        &sizes,
        Axis {
            range: lylo..lyhi,
            ticks: log_ticks(ylo, yhi).iter().map(|v| v.log10()).collect(),
        },
        &|v| value_label(10f64.powf(v), metric),
        &format!("{} (log)", metric.name()),
        if left_out.is_empty() { 6 } else { 24 },
    )?;
    let to_log = |pts: &[(usize, f64)]| -> Vec<(f64, f64)> {
        pts.iter().map(|&(b, v)| (lx(b), v.log10())).collect()
    };
    let (xpix, ypix) = chart.plotting_area().get_pixel_range();
    let small = look(12.0, DARK_GREY, HPos::Left, VPos::Bottom);
    // Labels placed so far (x0, y0, x1, y1), so that none covers another.
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    // Floors first, underneath, named at their leftmost point in range.
    for r in &refs {
        if left_out.iter().any(|l| l == r.label) {
            continue;
        }
        for piece in clip(&to_log(&r.points), lylo, lyhi) {
            let px: Vec<(i32, i32)> = piece.iter().map(|p| chart.backend_coord(p)).collect();
            floor_line(root, r.label, px)?;
        }
        if let Some(p) = to_log(&r.points)
            .iter()
            .find(|p| p.1 >= lylo && p.1 <= lyhi)
        {
            let (px, py) = chart.backend_coord(p);
            let (tw, th) = ink.measure(r.label, 12.0);
            let x0 = (px + 6).min(xpix.end - tw - 2);
            placed.push((x0, py - 3 - th, x0 + tw, py - 3));
            ink.text(root, r.label, (x0, py - 3), small)?;
        }
    }
    for l in &lines {
        let color = mode_color(&l.who.1);
        let px: Vec<(i32, i32)> = to_log(&l.points)
            .iter()
            .map(|p| chart.backend_coord(p))
            .collect();
        if l.who.0 == Tool::Sgmap {
            root.draw(&PathElement::new(px.clone(), color.stroke_width(3)))?;
        } else {
            dashed(root, px.clone(), dash_of(l.who.0), color.stroke_width(2))?;
        }
        for p in px {
            marker(root, l.who.0, p, color)?;
        }
    }
    // The best contender at each size: a ring, and its name above it.
    for best in winners(doc, &panel.dir, panel.depth) {
        let Some(v) = lines
            .iter()
            .find(|l| l.who == best.who)
            .and_then(|l| l.points.iter().find(|p| p.0 == best.bs))
            .map(|p| p.1)
        else {
            continue;
        };
        let c = chart.backend_coord(&(lx(best.bs), v.log10()));
        root.draw(&Circle::new(c, 9, BLACK.stroke_width(2)))?;
        let text = format!("{}{}", who_name(&best.who), margin_words(best.margin));
        let (tw, th) = ink.measure(&text, 13.0);
        let x0 = (c.0 - tw / 2).clamp(xpix.start + 2, (xpix.end - tw - 2).max(xpix.start));
        let mut y1 = c.1 - 12;
        // Lifted until it touches no other label.
        let overlaps = |y1: i32, placed: &[(i32, i32, i32, i32)]| {
            placed
                .iter()
                .any(|&(a, b, c, d)| x0 < c + 3 && x0 + tw + 3 > a && y1 - th < d && y1 > b)
        };
        while overlaps(y1, &placed) && y1 - th > ypix.start - 30 {
            y1 -= 2;
        }
        placed.push((x0, y1 - th, x0 + tw, y1));
        root.draw(&Rectangle::new(
            [(x0 - 2, y1 - th), (x0 + tw + 2, y1 + 1)],
            WHITE.mix(0.85).filled(),
        ))?;
        ink.text(
            root,
            &text,
            (x0, y1),
            look(13.0, mode_color(&best.who.1), HPos::Left, VPos::Bottom),
        )?;
    }
    if !left_out.is_empty() {
        let (apx, apy) = area.get_pixel_range();
        ink.text(
            root,
            &format!(
                "off the scale (far above the data): {}",
                left_out.join(", ")
            ),
            (apx.start + 92, apy.end - 4),
            small,
        )?;
    }
    Ok(())
}

fn ratio_panel<DB: DrawingBackend>(
    ink: &Ink,
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    doc: &BenchDoc,
    panel: &Panel,
) -> Result<(), E<DB>> {
    let peer = panel.peer.unwrap_or(Tool::Fio);
    let lines = ratios(doc, peer, &panel.dir, panel.depth);
    let (ylo, yhi) = ratio_range(&lines);
    let sizes: BTreeSet<usize> = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.bs))
        .collect();
    let (xr, _) = x_axis(&sizes);
    let mut yticks: Vec<f64> = log_ticks(ylo, yhi);
    if !yticks.iter().any(|t| (t - 1.0).abs() < 1e-9) {
        yticks.push(1.0);
    }
    let peer_words = match peer {
        Tool::SgRead => "÷ sg_read, same mode",
        Tool::SgDd => "÷ sg_dd, same mode",
        _ => "÷ fio's sg engine",
    };
    let chart = frame(
        ink,
        root,
        area,
        &format!(
            "{}, queue depth {}: sgmap {peer_words}",
            dir_words(&panel.dir),
            panel.depth
        ),
        &sizes,
        Axis {
            range: ylo.log10()..yhi.log10(),
            ticks: yticks.iter().map(|v| v.log10()).collect(),
        },
        &|v| format!("{}×", trim(10f64.powf(v))),
        "ratio (log)",
        6,
    )?;
    root.draw(&PathElement::new(
        vec![
            chart.backend_coord(&(xr.start, 0.0)),
            chart.backend_coord(&(xr.end, 0.0)),
        ],
        BLACK.stroke_width(2),
    ))?;
    let n = lines.len() as f64;
    for (i, (mode, pts)) in lines.iter().enumerate() {
        let color = mode_color(mode);
        // Side by side around each size, so the bars do not hide each other.
        let dx = (i as f64 - (n - 1.0) / 2.0) * 0.09;
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (lx(p.bs) + dx, p.median.log10()))
            .collect();
        let px: Vec<(i32, i32)> = xy.iter().map(|p| chart.backend_coord(p)).collect();
        root.draw(&PathElement::new(px.clone(), color.stroke_width(2)))?;
        for (p, c) in pts.iter().zip(&xy) {
            if let Some((lo, hi)) = p.spread {
                let top = chart.backend_coord(&(c.0, hi.log10()));
                let bottom = chart.backend_coord(&(c.0, lo.log10()));
                root.draw(&PathElement::new(vec![top, bottom], color.stroke_width(1)))?;
                for end in [top, bottom] {
                    root.draw(&PathElement::new(
                        vec![(end.0 - 4, end.1), (end.0 + 4, end.1)],
                        color.stroke_width(1),
                    ))?;
                }
            }
            root.draw(&Circle::new(chart.backend_coord(c), 4, color.filled()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CopyFloor, Floors};
    use crate::xfer::ModesJson;

    fn row(tool: Tool, mode: &str, bs: usize, depth: usize, cmds: &[f64]) -> Row {
        let mut sorted = cmds.to_vec();
        sorted.sort_by(f64::total_cmp);
        let c = sorted[sorted.len() / 2];
        Row {
            tool,
            mode: mode.into(),
            dir: "read".into(),
            bs,
            depth,
            commands_per_run: 10,
            runs: cmds.len(),
            mb_per_s: c * bs as f64 / 1e6,
            commands_per_s: c,
            cpu_ms_per_gb: None,
            samples_commands_per_s: cmds.to_vec(),
            modes_seen: ModesJson::default(),
            vs_indirect: None,
            vs_tur: None,
            vs_copy: None,
            vs_sg_read: None,
            vs_fio: None,
            vs_floor: None,
            vs_sg_dd: None,
            spreads: Default::default(),
        }
    }

    const M: usize = 1 << 20;

    fn doc() -> BenchDoc {
        BenchDoc {
            device: "/dev/sg0".into(),
            kernel: "6.1.0-test".into(),
            block_size: 512,
            max_transfer: M,
            rounds: 3,
            run_ms: 100,
            offset: 0,
            span: None,
            floors: Floors {
                tur_commands_per_s: Some(50_000.0),
                copy: vec![
                    CopyFloor {
                        bs: 4096,
                        mb_per_s: 3000.0,
                        samples_mb_per_s: vec![],
                    },
                    CopyFloor {
                        bs: M,
                        mb_per_s: 5000.0,
                        samples_mb_per_s: vec![],
                    },
                ],
                ..Floors::default()
            },
            results: vec![
                // 4 KiB, depth 1: sg_read mmap is best (40k over sgmap's 38k).
                row(Tool::Sgmap, "mmap", 4096, 1, &[37e3, 38e3, 39e3]),
                row(Tool::Sgmap, "indirect", 4096, 1, &[30e3, 31e3, 29e3]),
                row(Tool::SgRead, "mmap", 4096, 1, &[40e3, 41e3, 39e3]),
                row(Tool::Fio, "indirect", 4096, 1, &[5e3, 6e3, 7e3]),
                // 1 MiB, depth 1: sgmap mmap is best.
                row(Tool::Sgmap, "mmap", M, 1, &[4000.0, 4100.0, 3900.0]),
                row(Tool::Sgmap, "indirect", M, 1, &[2000.0, 2100.0, 1900.0]),
                row(Tool::SgRead, "mmap", M, 1, &[3800.0, 4000.0, 3700.0]),
                row(Tool::Fio, "indirect", M, 1, &[1000.0, 1000.0, 1000.0]),
                // Depth 16: the bare floor is fastest but is no contender.
                row(Tool::Sgmap, "uring", 4096, 16, &[180e3, 190e3, 185e3]),
                row(Tool::Bare, "uring", 4096, 16, &[200e3, 195e3, 198e3]),
                row(Tool::FioUring, "direct", 4096, 16, &[6e3, 7e3, 6.5e3]),
                row(Tool::Fio, "indirect", 4096, 16, &[3e3, 3e3, 3e3]),
            ],
            skipped: vec![],
        }
    }

    #[test]
    fn the_best_contender_is_picked_per_size_and_the_floor_is_not_one() {
        let d = doc();
        let w = winners(&d, "read", 1);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].bs, w[0].who.clone()),
            (4096, (Tool::SgRead, "mmap".into()))
        );
        assert!((w[0].margin.unwrap() - 40e3 / 38e3).abs() < 1e-9);
        assert_eq!(
            (w[1].bs, w[1].who.clone()),
            (M, (Tool::Sgmap, "mmap".into()))
        );
        let w16 = winners(&d, "read", 16);
        assert_eq!(w16[0].who, (Tool::Sgmap, "uring".into()));
        assert!((w16[0].margin.unwrap() - 185e3 / 6.5e3).abs() < 1e-9);
    }

    #[test]
    fn panels_go_per_direction_and_depth() {
        let mut d = doc();
        let mut w = row(Tool::Sgmap, "mmap", 4096, 16, &[1e3, 1e3, 1e3]);
        w.dir = "write".into();
        d.results.push(w);
        let g = throughput_grid(&d);
        let shape: Vec<Vec<(String, usize)>> = g
            .iter()
            .map(|r| r.iter().map(|p| (p.dir.clone(), p.depth)).collect())
            .collect();
        assert_eq!(
            shape,
            [
                vec![("read".to_string(), 1), ("read".to_string(), 16)],
                vec![("write".to_string(), 16)]
            ]
        );
        // Lines: sgmap first, then peers; the bare loop is a floor.
        let l = lines(&d, "read", 16, Metric::Cmds);
        let who: Vec<String> = l.iter().map(|l| who_name(&l.who)).collect();
        assert_eq!(who, ["sgmap uring", "fio indirect", "fio_uring direct"]);
        let r = references(&d, "read", 16, Metric::Cmds);
        assert_eq!(r.last().unwrap().label, "bare io_uring loop");
        // Writes beside sg_dd in the same mode get a ratio row of their own.
        let mut dd = row(Tool::SgDd, "mmap", 4096, 16, &[500.0, 500.0, 500.0]);
        dd.dir = "write".into();
        d.results.push(dd);
        let g = ratio_grid(&d);
        let last = g.last().unwrap();
        assert_eq!(
            (last[0].dir.as_str(), last[0].peer),
            ("write", Some(Tool::SgDd))
        );
        let w = ratios(&d, Tool::SgDd, "write", 16);
        assert_eq!(w.len(), 1);
        assert!((w[0].1[0].median - 2.0).abs() < 1e-12);
        assert_eq!(r.last().unwrap().points, vec![(4096, 198e3)]);
    }

    #[test]
    fn floors_follow_the_metric() {
        let d = doc();
        let r = references(&d, "read", 1, Metric::Mbps);
        assert_eq!(r[0].label, "one memory copy");
        assert_eq!(r[0].points, vec![(4096, 3000.0), (M, 5000.0)]);
        // TEST UNIT READY in MB/s: round trips × the size.
        assert_eq!(
            r[1].points,
            vec![
                (4096, 50_000.0 * 4096.0 / 1e6),
                (M, 50_000.0 * M as f64 / 1e6)
            ]
        );
        let c = references(&d, "read", 1, Metric::Cmds);
        assert_eq!(c[0].points[1], (M, 5000.0 * 1e6 / M as f64));
        assert_eq!(c[1].points, vec![(4096, 50_000.0), (M, 50_000.0)]);
        assert_eq!(Metric::Auto.resolve(&d), Metric::Mbps);
        let mut narrow = d.clone();
        narrow.results.retain(|r| r.bs == 4096);
        assert_eq!(Metric::Auto.resolve(&narrow), Metric::Cmds);
    }

    #[test]
    fn log_ranges_come_from_the_data() {
        assert_eq!(log_range([150.0, 9000.0], 1.0), Some((100.0, 10_000.0)));
        assert_eq!(log_range([3.0e4, 4.1e4], 1.0), Some((20_000.0, 50_000.0)));
        assert_eq!(log_range([0.0, f64::NAN], 1.0), None);
        let t = log_ticks(100.0, 10_000.0);
        assert_eq!(
            t,
            vec![100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0]
        );
        // A narrow range gets finer ticks; a wide one only decades.
        assert!(log_ticks(0.8, 1.25).len() >= 4);
        assert_eq!(log_ticks(1.0, 1e6).len(), 7);
        // A floor far above the data is left out of the range and named.
        let d = doc();
        let l = lines(&d, "read", 1, Metric::Cmds);
        let refs = references(&d, "read", 1, Metric::Cmds);
        let ((lo, hi), out) = throughput_range(&l, &refs).unwrap();
        assert!(lo <= 1000.0 && hi >= 41e3, "{lo}..{hi}");
        assert!(out.is_empty(), "{out:?}");
        let mut far = refs.clone();
        far[0].points = vec![(4096, 1e9), (M, 1e9)];
        let (_, out) = throughput_range(&l, &far).unwrap();
        assert_eq!(out, ["one memory copy"]);
    }

    #[test]
    fn clipping_keeps_the_part_in_range() {
        // A line from 0 to 4 (log units) in a 1..3 window: cut at both ends.
        let pieces = clip(&[(0.0, 0.0), (4.0, 4.0)], 1.0, 3.0);
        assert_eq!(pieces, vec![vec![(1.0, 1.0), (3.0, 3.0)]]);
        // Out, in, out, in: two pieces.
        let pieces = clip(&[(0.0, 2.0), (1.0, 5.0), (2.0, 2.0)], 1.0, 3.0);
        assert_eq!(pieces.len(), 2);
        let near = |got: &[(f64, f64)], want: &[(f64, f64)]| {
            got.len() == want.len()
                && got
                    .iter()
                    .zip(want)
                    .all(|(a, b)| (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12)
        };
        assert!(
            near(&pieces[0], &[(0.0, 2.0), (1.0 / 3.0, 3.0)]),
            "{pieces:?}"
        );
        assert!(
            near(&pieces[1], &[(5.0 / 3.0, 3.0), (2.0, 2.0)]),
            "{pieces:?}"
        );
        assert!(clip(&[(0.0, 9.0), (1.0, 9.0)], 1.0, 3.0).is_empty());
    }

    #[test]
    fn ratios_pair_the_rounds_and_keep_their_spread() {
        let d = doc();
        let r = ratios(&d, Tool::SgRead, "read", 1);
        let modes: Vec<&str> = r.iter().map(|m| m.0.as_str()).collect();
        // sgmap indirect has no sg_read indirect beside it.
        assert_eq!(modes, ["mmap"]);
        let p = r[0].1[0];
        assert_eq!(p.bs, 4096);
        // Rounds: 37/40, 38/41, 39/39.
        let rounds = [37.0 / 40.0, 38.0 / 41.0, 1.0];
        assert!((p.median - rounds[1]).abs() < 1e-12);
        assert_eq!(p.spread, Some((rounds[0], rounds[2])));
        let f = ratios(&d, Tool::Fio, "read", 1);
        assert_eq!(
            f.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
            ["mmap", "indirect"]
        );
        assert!((f[0].1[1].median - 4.0).abs() < 1e-12);
        // At depth 16 fio is there, sg_read is not: one ratio panel row each.
        let g = ratio_grid(&d);
        let shape: Vec<Vec<(Option<Tool>, usize)>> = g
            .iter()
            .map(|r| r.iter().map(|p| (p.peer, p.depth)).collect())
            .collect();
        assert_eq!(
            shape,
            [
                vec![(Some(Tool::SgRead), 1)],
                vec![(Some(Tool::Fio), 1), (Some(Tool::Fio), 16)]
            ]
        );
        // Unpaired rounds: the ratio of the medians, no bar.
        let mut d2 = d.clone();
        d2.results[2].samples_commands_per_s.pop();
        let p = ratios(&d2, Tool::SgRead, "read", 1)[0].1[0];
        assert_eq!(p.spread, None);
        assert!((p.median - 38e3 / d2.results[2].commands_per_s).abs() < 1e-12);
        let (lo, hi) = ratio_range(&f);
        assert!(lo < 1.0 && hi > 4.0);
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(size_label(4096), "4K");
        assert_eq!(size_label(1_310_720), "1.25M");
        assert_eq!(value_label(2000.0, Metric::Mbps), "2 GB/s");
        assert_eq!(value_label(500.0, Metric::Mbps), "500 MB/s");
        assert_eq!(value_label(20_000.0, Metric::Cmds), "20k");
        assert_eq!(value_label(1.5e6, Metric::Cmds), "1.5M");
        assert_eq!(margin_words(Some(1.004)), " +0.4%");
        assert_eq!(margin_words(Some(1.234)), " +23%");
        assert_eq!(margin_words(Some(70.14)), " ×70.1");
        assert_eq!(margin_words(None), "");
    }

    #[test]
    fn pictures_are_written_as_svg_and_png() {
        if font().is_err() {
            // Without a system font the plot fails with a message saying so.
            let err = draw(
                &doc(),
                Picture::Throughput,
                &Style::default(),
                Path::new("/nonexistent/x.svg"),
            )
            .unwrap_err();
            assert!(err.contains("SGMAP_PLOT_FONT"), "{err}");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sgmap-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let style = Style {
            label: Some("sync, delay=0".into()),
            metric: Metric::Auto,
        };
        let svg = dir.join("t.svg");
        draw(&doc(), Picture::Throughput, &style, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..40.min(text.len())]);
        for want in [
            "sgmap mmap",
            "sg_read mmap +",
            "Linux 6.1.0-test",
            "sync, delay=0",
            "queue depth 16",
            "1M",
        ] {
            assert!(text.contains(want), "no {want:?} in the SVG");
        }
        let ratios_svg = dir.join("r.svg");
        draw(&doc(), Picture::Ratios, &style, &ratios_svg).unwrap();
        let text = std::fs::read_to_string(&ratios_svg).unwrap();
        assert!(text.contains("÷ sg_read, same mode") && text.contains("÷ fio"));
        let png = dir.join("t.png");
        draw(&doc(), Picture::Throughput, &style, &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            draw(&doc(), Picture::Throughput, &style, &dir.join("t.gif"))
                .unwrap_err()
                .contains(".svg or .png")
        );
        let mut lonely = doc();
        lonely.results.retain(|r| r.tool == Tool::Sgmap);
        assert!(draw(&lonely, Picture::Ratios, &style, &dir.join("n.png"))
            .unwrap_err()
            .contains("--peers"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
