//! `--plot FILE.svg|png`: throughput against transfer size, one line per tool,
//! mode and depth, one panel per direction, with the copy floor for reference.
//!
//! Text is drawn with a TrueType font read from the system (DejaVu Sans,
//! Liberation Sans or FreeSans; `SGMAP_PLOT_FONT=/path/font.ttf` picks
//! another), so no C font library is needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{BenchDoc, Row};

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a system font as plotters' "sans-serif", once.
fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let from_env = std::env::var("SGMAP_PLOT_FONT").ok();
        let candidates = from_env.iter().map(String::as_str).chain(FONT_CANDIDATES.iter().copied());
        for path in candidates {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the program.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
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

/// Draws `doc` into `path`, as SVG or PNG by the extension.
pub(crate) fn draw(doc: &BenchDoc, path: &Path) -> Result<(), String> {
    font()?;
    let size = (1000u32, 420 * panels(doc).max(1) as u32 + 40);
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            render(&root, doc)?;
            root.present().map_err(|e| e.to_string())
        }
        Some("png") => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                render(&root, doc)?;
                root.present().map_err(|e| e.to_string())?;
            }
            write_png(path, size, &rgb)
        }
        _ => Err("the plot file must end in .svg or .png".into()),
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

fn dirs(doc: &BenchDoc) -> Vec<String> {
    let mut d: Vec<String> = doc.results.iter().map(|r| r.dir.clone()).collect();
    d.sort();
    d.dedup();
    d
}

fn panels(doc: &BenchDoc) -> usize {
    dirs(doc).len()
}

/// The series of one panel: (label, points of (KiB, MB/s)).
fn series(doc: &BenchDoc, dir: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut keys: Vec<(String, usize)> = doc
        .results
        .iter()
        .filter(|r| r.dir == dir)
        .map(|r| (format!("{} {}", r.tool.name(), r.mode), r.depth))
        .collect();
    keys.sort();
    keys.dedup();
    let depths: std::collections::BTreeSet<usize> = keys.iter().map(|k| k.1).collect();
    let mut out = Vec::new();
    for (name, depth) in keys {
        let mut pts: Vec<(f64, f64)> = doc
            .results
            .iter()
            .filter(|r: &&Row| {
                r.dir == dir && r.depth == depth && format!("{} {}", r.tool.name(), r.mode) == name
            })
            .map(|r| (r.bs as f64 / 1024.0, r.mb_per_s))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label = if depths.len() > 1 {
            format!("{name} (depth {depth})")
        } else {
            name
        };
        out.push((label, pts));
    }
    let copy: Vec<(f64, f64)> = doc
        .floors
        .copy
        .iter()
        .map(|c| (c.bs as f64 / 1024.0, c.mb_per_s))
        .collect();
    if !copy.is_empty() {
        out.push(("one memory copy (floor)".into(), copy));
    }
    out
}

fn render<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, doc: &BenchDoc) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            &format!(
                "sgmap bench on {}: throughput by transfer size (medians of {} runs)",
                doc.device, doc.rounds
            ),
            ("sans-serif", 20),
        )
        .map_err(e)?;
    let dirs = dirs(doc);
    let areas = body.split_evenly((dirs.len().max(1), 1));
    for (dir, area) in dirs.iter().zip(areas.iter()) {
        let lines = series(doc, dir);
        let xs = lines.iter().flat_map(|l| l.1.iter().map(|p| p.0));
        let (mut xmin, mut xmax) = (f64::MAX, f64::MIN);
        let mut ymax: f64 = 1.0;
        for x in xs {
            xmin = xmin.min(x);
            xmax = xmax.max(x);
        }
        for l in &lines {
            for p in &l.1 {
                ymax = ymax.max(p.1);
            }
        }
        if xmin > xmax {
            continue;
        }
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{dir}s"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0.0..ymax * 1.1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("transfer size (KiB, log scale)")
            .y_desc("MB/s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(e)?;
        for (i, (label, pts)) in lines.iter().enumerate() {
            let floor = label.starts_with("one memory copy");
            let color = if floor {
                BLACK.mix(0.5)
            } else {
                Palette99::pick(i).to_rgba()
            };
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CopyFloor, Floors, Tool};
    use crate::xfer::ModesJson;

    fn row(tool: Tool, mode: &str, bs: usize, mb: f64) -> Row {
        Row {
            tool,
            mode: mode.into(),
            dir: "read".into(),
            bs,
            depth: 1,
            commands_per_run: 10,
            runs: 1,
            mb_per_s: mb,
            commands_per_s: mb * 1e6 / bs as f64,
            cpu_ms_per_gb: None,
            samples_commands_per_s: vec![],
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

    fn doc() -> BenchDoc {
        BenchDoc {
            device: "/dev/sg0".into(),
            block_size: 512,
            max_transfer: 1 << 20,
            rounds: 3,
            run_ms: 100,
            offset: 0,
            span: None,
            floors: Floors {
                copy: vec![
                    CopyFloor {
                        bs: 4096,
                        mb_per_s: 3000.0,
                        samples_mb_per_s: vec![],
                    },
                    CopyFloor {
                        bs: 1 << 20,
                        mb_per_s: 5000.0,
                        samples_mb_per_s: vec![],
                    },
                ],
                ..Floors::default()
            },
            results: vec![
                row(Tool::Sgmap, "mmap", 4096, 200.0),
                row(Tool::Sgmap, "mmap", 1 << 20, 4000.0),
                row(Tool::SgRead, "mmap", 4096, 190.0),
                row(Tool::SgRead, "mmap", 1 << 20, 3900.0),
            ],
            skipped: vec![],
        }
    }

    #[test]
    fn series_follow_tool_mode_and_size() {
        let s = series(&doc(), "read");
        let names: Vec<&str> = s.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            ["sg_read mmap", "sgmap mmap", "one memory copy (floor)"]
        );
        assert_eq!(s[1].1, vec![(4.0, 200.0), (1024.0, 4000.0)]);
    }

    #[test]
    fn svg_and_png_are_written() {
        if font().is_err() {
            // Without a system font the plot fails with a message saying so.
            let err = draw(&doc(), Path::new("/nonexistent/x.svg")).unwrap_err();
            assert!(err.contains("SGMAP_PLOT_FONT"), "{err}");
            return;
        }
        let dir = std::env::temp_dir().join(format!("sgmap-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svg = dir.join("t.svg");
        draw(&doc(), &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..40.min(text.len())]);
        assert!(text.contains("sgmap mmap") && text.contains("transfer size"));
        let png = dir.join("t.png");
        draw(&doc(), &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(draw(&doc(), &dir.join("t.gif"))
            .unwrap_err()
            .contains(".svg or .png"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
