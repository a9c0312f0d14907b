//! The bench's results: a markdown table for the README and JSON for
//! comparing runs, both written into `bench-results/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::bench::driver::DriveResult;
use crate::error::XtaskError;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: String,
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// The server's peak resident memory during this workload (`VmHWM`).
    pub peak_rss_mib: Option<f64>,
    /// CPU use in percent of one core: the server's (all threads, up to
    /// 100 x cores) and the load generator's (at most 100).
    pub server_cpu_percent: Option<f64>,
    pub generator_cpu_percent: Option<f64>,
    /// Response body received per second, in MB (10^6 bytes); set by the
    /// sections that show it (see [`Section::wide`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_mb_per_second: Option<f64>,
}

impl Row {
    pub fn new(
        workload: impl Into<String>,
        result: &DriveResult,
        peak_rss_kib: Option<u64>,
        server_cpu: Option<Duration>,
    ) -> Self {
        Self {
            workload: workload.into(),
            requests: result.requests(),
            requests_per_second: result.requests_per_second(),
            p50_ms: result.percentile_ms(0.50),
            p99_ms: result.percentile_ms(0.99),
            errors: result.errors(),
            peak_rss_mib: peak_rss_kib.map(|kib| kib as f64 / 1024.0),
            server_cpu_percent: server_cpu
                .map(|cpu| 100.0 * cpu.as_secs_f64() / result.elapsed.as_secs_f64().max(1e-9)),
            generator_cpu_percent: result.generator_cpu_percent(),
            body_mb_per_second: None,
        }
    }

    /// With the body bytes `result` received per second.
    pub fn with_body_rate(mut self, result: &DriveResult) -> Self {
        self.body_mb_per_second =
            Some(result.body_bytes() as f64 / 1e6 / result.elapsed.as_secs_f64().max(1e-9));
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    /// Seeding times, goal checks and anything else worth a line.
    pub notes: Vec<String>,
    /// The table also has each row's request count and body MB/s (the
    /// scale part, where few requests carry large bodies).
    #[serde(default)]
    pub wide: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
}

impl Machine {
    pub fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Seconds since the Unix epoch when the bench started.
    pub started_at: u64,
    pub machine: Machine,
    /// How the load was generated, so nobody reads the numbers without it.
    pub generator: String,
    /// The server binary measured.
    pub server: String,
    pub seconds_per_workload: f64,
    pub connections: usize,
    pub sections: Vec<Section>,
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"))
}

impl BenchReport {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Machine: {} cores ({}). {} s per workload, {} connections.\n\nServer: `{}`\n\nLoad generator: {}\n",
            self.machine.cores,
            self.machine.cpu,
            self.seconds_per_workload,
            self.connections,
            self.server,
            self.generator
        );
        for section in &self.sections {
            let _ = writeln!(out, "### {}\n", section.title);
            if !section.rows.is_empty() {
                if section.wide {
                    let _ = writeln!(
                        out,
                        "| workload | requests | requests/s | p50 ms | p99 ms | errors | body MB/s | peak RSS MiB | server CPU % | generator CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "| workload | requests/s | p50 ms | p99 ms | errors | peak RSS MiB | server CPU % | generator CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|"
                    );
                }
                for row in &section.rows {
                    let server_cpu = opt(row.server_cpu_percent.map(f64::round));
                    let generator_cpu = opt(row.generator_cpu_percent.map(f64::round));
                    if section.wide {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
                            row.workload,
                            row.requests,
                            row.requests_per_second,
                            row.p50_ms,
                            row.p99_ms,
                            row.errors,
                            row.body_mb_per_second.map_or_else(
                                || "n/a".to_owned(),
                                |v| if v < 100.0 {
                                    format!("{v:.1}")
                                } else {
                                    format!("{v:.0}")
                                }
                            ),
                            opt(row.peak_rss_mib),
                            server_cpu,
                            generator_cpu,
                        );
                    } else {
                        let _ = writeln!(
                            out,
                            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
                            row.workload,
                            row.requests_per_second,
                            row.p50_ms,
                            row.p99_ms,
                            row.errors,
                            opt(row.peak_rss_mib),
                            server_cpu,
                            generator_cpu,
                        );
                    }
                }
                out.push('\n');
            }
            for note in &section.notes {
                let _ = writeln!(out, "- {note}");
            }
            if !section.notes.is_empty() {
                out.push('\n');
            }
        }
        out
    }

    /// Writes `bench-<start>.md` and `.json` into `dir`, and the same as
    /// `latest.md` and `latest.json`; returns the markdown file's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, XtaskError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| XtaskError::io(format!("creating {}", dir.display()), e))?;
        let markdown = self.markdown();
        let json = serde_json::to_string_pretty(self).expect("a report always serialises");
        let stem = format!("bench-{}", self.started_at);
        for (name, text) in [
            (format!("{stem}.md"), &markdown),
            (format!("{stem}.json"), &json),
            ("latest.md".to_owned(), &markdown),
            ("latest.json".to_owned(), &json),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text)
                .map_err(|e| XtaskError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(dir.join(format!("{stem}.md")))
    }

    pub fn errors(&self) -> u64 {
        self.sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|r| r.errors)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_a_row_per_workload_and_the_notes() {
        let report = BenchReport {
            started_at: 1,
            machine: Machine {
                cores: 2,
                cpu: "test".into(),
            },
            generator: "one thread".into(),
            server: "target/release/server".into(),
            seconds_per_workload: 10.0,
            connections: 32,
            sections: vec![Section {
                title: "SQLite".into(),
                rows: vec![Row {
                    workload: "GET /healthz".into(),
                    requests: 1000,
                    requests_per_second: 100.0,
                    p50_ms: 1.25,
                    p99_ms: 3.5,
                    errors: 0,
                    peak_rss_mib: Some(20.0),
                    server_cpu_percent: Some(120.4),
                    generator_cpu_percent: None,
                    body_mb_per_second: None,
                }],
                notes: vec!["goal met".into()],
                wide: false,
            }],
        };
        let markdown = report.markdown();
        assert!(
            markdown.contains("| GET /healthz | 100 | 1.25 | 3.50 | 0 | 20.0 | 120.0 | n/a |"),
            "{markdown}"
        );
        assert!(markdown.contains("- goal met"));
        assert!(markdown.contains("2 cores"));
        assert!(!markdown.contains("body MB/s"), "{markdown}");

        let mut wide = report.clone();
        wide.sections[0].wide = true;
        wide.sections[0].rows[0].body_mb_per_second = Some(1234.4);
        let markdown = wide.markdown();
        assert!(
            markdown.contains("| workload | requests | requests/s |")
                && markdown.contains(
                    "| GET /healthz | 1000 | 100.0 | 1.25 | 3.50 | 0 | 1234 | 20.0 | 120.0 | n/a |"
                ),
            "{markdown}"
        );
    }
}
