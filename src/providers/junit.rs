//! JUnit XML reports, summarized: how many test cases passed, failed (a `<failure>` or an
//! `<error>`) and were skipped. A small scanner over tags, not an XML parser: it reads what test
//! runners write (JUnit, pytest, Jest, cargo2junit, go-junit-report) and counts nothing it cannot
//! see, so a malformed file yields what it holds, never an error.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.skipped
    }
}

/// The tags of `xml`, in order: `(name, self-closing)`; a closing tag's name starts with `/`.
/// Comments, CDATA sections (test output often holds `<`), declarations and processing
/// instructions are skipped whole.
fn tags(xml: &str) -> impl Iterator<Item = (&str, bool)> {
    const SKIPPED: [(&str, &str); 4] =
        [("!--", "-->"), ("![CDATA[", "]]>"), ("?", "?>"), ("!", ">")];
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            rest = &rest[rest.find('<')? + 1..];
            if let Some((open, close)) = SKIPPED.iter().find(|(open, _)| rest.starts_with(open)) {
                let after = &rest[open.len()..];
                rest = &after[after.find(close)? + close.len()..];
                continue;
            }
            let end = rest.find('>')?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            let (slash, body) = match tag.strip_prefix('/') {
                Some(body) => (1, body),
                None => (0, tag),
            };
            let len = body
                .find(|c: char| c.is_whitespace() || c == '/')
                .unwrap_or(body.len());
            if len == 0 {
                continue;
            }
            return Some((&tag[..slash + len], tag.ends_with('/')));
        }
    })
}

pub fn summarize(xml: &str) -> Counts {
    let mut counts = Counts::default();
    // Inside a <testcase>: what it holds so far.
    let mut open: Option<(bool, bool)> = None;
    let finish = |case: (bool, bool), counts: &mut Counts| match case {
        (true, _) => counts.failed += 1,
        (false, true) => counts.skipped += 1,
        _ => counts.passed += 1,
    };
    for (name, self_closing) in tags(xml) {
        match name {
            "testcase" if self_closing => {
                if let Some(case) = open.take() {
                    finish(case, &mut counts);
                }
                counts.passed += 1;
            }
            "testcase" => {
                if let Some(case) = open.replace((false, false)) {
                    finish(case, &mut counts);
                }
            }
            "/testcase" => {
                if let Some(case) = open.take() {
                    finish(case, &mut counts);
                }
            }
            "failure" | "error" => {
                if let Some(case) = open.as_mut() {
                    case.0 = true;
                }
            }
            "skipped" => {
                if let Some(case) = open.as_mut() {
                    case.1 = true;
                }
            }
            _ => {}
        }
    }
    if let Some(case) = open {
        finish(case, &mut counts);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_counted_as_passed_failed_or_skipped() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment with <testcase> in it -->
<testsuites>
  <testsuite name="unit" tests="5">
    <testcase name="ok" classname="a"/>
    <testcase name="ok too" classname="a"></testcase>
    <testcase name="broken"><failure message="1 != 2"><![CDATA[assert <testcase> 1 == 2]]></failure></testcase>
    <testcase name="crashed"><error type="panic"/></testcase>
    <testcase name="later"><skipped/></testcase>
    <testcase name="with output"><system-out>fine</system-out></testcase>
  </testsuite>
</testsuites>"#;
        assert_eq!(
            summarize(xml),
            Counts {
                passed: 3,
                failed: 2,
                skipped: 1
            }
        );
    }

    #[test]
    fn junk_counts_nothing_and_never_panics() {
        for junk in [
            "",
            "<",
            "<<<>>>",
            "<testcase",
            "not xml at all",
            "<testcase><failure",
            "<!--",
        ] {
            let c = summarize(junk);
            assert!(c.total() <= 1, "{junk:?}: {c:?}");
        }
        assert_eq!(
            summarize("<testcase><failure").failed,
            0,
            "an unclosed tag is not seen"
        );
    }
}
