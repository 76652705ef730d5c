//! The Prometheus text exposition, written one way for every metric family.
//!
//! Admin plane. Each subsystem keeps its counters as atomics (no lock, no
//! allocation when counting) and renders them at scrape time through an
//! [`Exposition`], which writes the `# HELP` and `# TYPE` lines, escapes label
//! values (text format 0.0.4: backslash, double quote and newline) and lays
//! out histogram buckets cumulatively.
//!
//! ```
//! use signpost_model::metrics::{Exposition, Kind};
//! let mut text = String::new();
//! let mut out = Exposition::new(&mut text);
//! out.family("dns_updates_total", Kind::Counter, "Total DNS updates.");
//! out.sample("dns_updates_total", &[("zone", &"a\"b")], 3);
//! assert_eq!(text, "# HELP dns_updates_total Total DNS updates.\n# TYPE dns_updates_total counter\ndns_updates_total{zone=\"a\\\"b\"} 3\n");
//! ```

use std::fmt::{self, Display, Write as _};

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, a count and a sum.
    Histogram,
}

/// Label names with their values, in exposition order.
pub type Labels<'a> = &'a [(&'a str, &'a dyn Display)];

/// Writes metric families into a text buffer.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
}

// === impl Exposition ===

impl<'a> Exposition<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Self {
        Self { out }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample: `name{labels} value` (no braces without labels).
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// One histogram series. `buckets` are (upper bound, observations in that
    /// bucket alone); they are written cumulatively, then `+Inf`, sum and count.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        buckets: impl IntoIterator<Item = (f64, u64)>,
        count: u64,
        sum: f64,
    ) {
        let mut cumulative = 0;
        for (bound, observed) in buckets {
            cumulative += observed;
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&bound));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some(&"+Inf"));
        let _ = writeln!(self.out, " {count}");
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {sum}");
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    fn labels(&mut self, labels: Labels<'_>, le: Option<&dyn Display>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|value| ("le", value));
        for (index, (name, value)) in labels.iter().copied().chain(le).enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            let _ = write!(Escaped(self.out), "{value}");
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// Escapes a label value as it is written.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text format 0.0.4: cumulative buckets, `+Inf` equals the count, then sum and count.
    #[test]
    fn histogram_is_cumulative() {
        let mut text = String::new();
        let mut out = Exposition::new(&mut text);
        out.histogram(
            "latency_seconds",
            &[("to", &"127.0.0.1:53")],
            [(0.25, 1), (0.5, 2)],
            4,
            1.5,
        );
        assert_eq!(
            text,
            "latency_seconds_bucket{to=\"127.0.0.1:53\",le=\"0.25\"} 1\n\
             latency_seconds_bucket{to=\"127.0.0.1:53\",le=\"0.5\"} 3\n\
             latency_seconds_bucket{to=\"127.0.0.1:53\",le=\"+Inf\"} 4\n\
             latency_seconds_sum{to=\"127.0.0.1:53\"} 1.5\n\
             latency_seconds_count{to=\"127.0.0.1:53\"} 4\n"
        );
    }

    /// A sample without labels has no braces; label values are escaped.
    #[test]
    fn samples_and_escaping() {
        let mut text = String::new();
        let mut out = Exposition::new(&mut text);
        out.sample("up", &[], 1);
        out.sample("errors", &[("file", &"a\\b\n\"c\"")], 2);
        assert_eq!(text, "up 1\nerrors{file=\"a\\\\b\\n\\\"c\\\"\"} 2\n");
    }
}
