//! What every scenario prints and writes: the machine line and a section of docs/benchmarks.md
//! between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers.

use std::path::PathBuf;

use k8s_openapi::jiff::Timestamp;

/// Today's date (UTC), for the table headers.
pub fn date() -> String {
    Timestamp::now().strftime("%Y-%m-%d").to_string()
}

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

pub fn write_section(path: &PathBuf, marker: &str, content: &str) {
    let start = format!("<!-- {marker}:start -->");
    let end = format!("<!-- {marker}:end -->");
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{start}\n{content}\n{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{}{}", &text[..s], section, &text[e + end.len()..])
        }
        _ => format!("{}\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, new).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
