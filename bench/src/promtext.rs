//! The Prometheus text format, as far as the benchmarks read it (the operator's and the API
//! server's `/metrics`): samples with labels, and sums over a label filter. Pure.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of the text; comments and lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, after) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, after)
        }
        None => {
            let space = line.find(' ')?;
            (&line[..space], BTreeMap::new(), &line[space..])
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` -> labels and what follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        let mut chars = s[eq + 1..].char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in chars {
            match (escaped, c) {
                (true, 'n') => value.push('\n'),
                (true, c) => value.push(c),
                (false, '\\') => {
                    escaped = true;
                    continue;
                }
                (false, '"') => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                (false, c) => value.push(c),
            }
            escaped = false;
        }
        labels.insert(key, value);
        s = &s[end?..];
    }
}

/// The sum of the samples named `name` whose labels include every `(key, value)` of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .fold(0.0, |sum, v| sum + v) // `Sum` starts at -0.0, which prints as "-0"
}

/// Sums of `name` grouped by the values of `keys`.
pub fn by_labels(samples: &[Sample], name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        let key = keys
            .iter()
            .map(|k| s.labels.get(*k).cloned().unwrap_or_default())
            .collect();
        *out.entry(key).or_insert(0.0) += s.value;
    }
    out
}

/// `after - before` per key, keeping only keys that changed.
pub fn delta(
    before: &BTreeMap<Vec<String>, f64>,
    after: &BTreeMap<Vec<String>, f64>,
) -> BTreeMap<Vec<String>, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP m2m_reconciles Reconciles
# TYPE m2m_reconciles counter
m2m_reconciles_total{kind="M2MApp",result="success"} 12
m2m_reconciles_total{kind="M2MApp",result="api_conflict"} 2
m2m_reconciles_total{kind="Organization",result="success"} 5
apiserver_request_total{code="201",resource="secrets",verb="POST",x="a,b=\"c\""} 7
process_start_time_seconds 1.7e9
"#;

    #[test]
    fn sums_over_a_label_filter() {
        let s = parse(TEXT);
        assert_eq!(sum(&s, "m2m_reconciles_total", &[("kind", "M2MApp")]), 14.0);
        assert_eq!(sum(&s, "m2m_reconciles_total", &[]), 19.0);
        assert_eq!(sum(&s, "process_start_time_seconds", &[]), 1.7e9);
        assert_eq!(
            sum(&s, "apiserver_request_total", &[("x", "a,b=\"c\"")]),
            7.0
        );
    }

    #[test]
    fn groups_and_diffs() {
        let before = by_labels(&parse(TEXT), "m2m_reconciles_total", &["kind"]);
        let after_text = TEXT.replace("} 12", "} 20");
        let after = by_labels(&parse(&after_text), "m2m_reconciles_total", &["kind"]);
        let d = delta(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d[&vec!["M2MApp".to_owned()]], 8.0);
    }
}
