//! ANSI colours in build logs, turned into classes (`ansi-red`, `ansi-bold` …) that the
//! stylesheet colours: the CSP allows no inline styles, and escaping stays askama's job (the
//! pieces are plain text). Select Graphic Rendition sequences set the classes; every other
//! escape sequence is dropped.

/// A run of text with the classes in force for it (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub class: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
    /// 0-7, or 8-15 for the bright ones.
    fg: Option<u8>,
    bg: Option<u8>,
}

const NAMES: [&str; 8] = [
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
];

impl Style {
    fn class(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        if self.bold {
            out.push("ansi-bold".into());
        }
        if self.dim {
            out.push("ansi-dim".into());
        }
        if self.italic {
            out.push("ansi-italic".into());
        }
        if self.underline {
            out.push("ansi-underline".into());
        }
        let name = |c: u8| {
            let base = NAMES[usize::from(c % 8)];
            if c >= 8 {
                format!("bright-{base}")
            } else {
                base.to_string()
            }
        };
        if let Some(c) = self.fg {
            out.push(format!("ansi-{}", name(c)));
        }
        if let Some(c) = self.bg {
            out.push(format!("ansi-bg-{}", name(c)));
        }
        out.join(" ")
    }

    fn apply(&mut self, params: &str) {
        let codes: Vec<u16> = if params.is_empty() {
            vec![0]
        } else {
            params
                .split(';')
                .map(|p| p.parse::<u16>().unwrap_or(0))
                .collect()
        };
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                c @ 30..=37 => self.fg = Some((c - 30) as u8),
                39 => self.fg = None,
                c @ 40..=47 => self.bg = Some((c - 40) as u8),
                49 => self.bg = None,
                c @ 90..=97 => self.fg = Some((c - 90) as u8 + 8),
                c @ 100..=107 => self.bg = Some((c - 100) as u8 + 8),
                // 256-colour and true-colour forms: skip their arguments (their colours are
                // not in the palette the stylesheet knows).
                38 | 48 => {
                    i += match codes.get(i + 1) {
                        Some(5) => 2,
                        Some(2) => 4,
                        _ => 0,
                    };
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// One log line in pieces; a line without escape sequences is one piece with no class.
pub fn pieces(line: &str) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut style = Style::default();
    let mut text = String::new();
    let mut chars = line.chars().peekable();
    let flush = |out: &mut Vec<Piece>, text: &mut String, style: &Style| {
        if !text.is_empty() {
            out.push(Piece {
                class: style.class(),
                text: std::mem::take(text),
            });
        }
    };
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            // Other control characters (a carriage return of a progress bar…) are not text.
            if !c.is_control() || c == '\t' {
                text.push(c);
            }
            continue;
        }
        match chars.peek() {
            Some('[') => {
                chars.next();
                let mut params = String::new();
                let mut last = None;
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        last = Some(c);
                        break;
                    }
                    params.push(c);
                }
                if last == Some('m') {
                    flush(&mut out, &mut text, &style);
                    style.apply(&params);
                }
            }
            // OSC (titles, links): up to BEL or ST.
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    flush(&mut out, &mut text, &style);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(class: &str, text: &str) -> Piece {
        Piece {
            class: class.into(),
            text: text.into(),
        }
    }

    #[test]
    fn colours_become_classes_and_reset_ends_them() {
        assert_eq!(pieces("plain"), [p("", "plain")]);
        assert_eq!(
            pieces("\u{1b}[1;31merror:\u{1b}[0m it broke"),
            [p("ansi-bold ansi-red", "error:"), p("", " it broke")]
        );
        assert_eq!(
            pieces("\u{1b}[92mok\u{1b}[39m \u{1b}[44mbg"),
            [
                p("ansi-bright-green", "ok"),
                p("", " "),
                p("ansi-bg-blue", "bg")
            ]
        );
        assert_eq!(
            pieces("\u{1b}[38;5;196mred\u{1b}[m"),
            [p("", "red")],
            "256 colours are skipped, arguments and all"
        );
    }

    #[test]
    fn other_sequences_and_controls_are_dropped_and_nothing_panics() {
        assert_eq!(pieces("a\u{1b}[2Kb\rc"), [p("", "abc")]);
        assert_eq!(pieces("\u{1b}]0;title\u{7}x"), [p("", "x")]);
        assert_eq!(pieces("<b>&</b>"), [p("", "<b>&</b>")], "text stays text");
        for junk in [
            "\u{1b}",
            "\u{1b}[",
            "\u{1b}[99999;;m",
            "\u{1b}[38;5m",
            "\u{1b}]",
        ] {
            let _ = pieces(junk);
        }
    }
}
