//! Reads the environment files systemd's kubelet unit would load
//! (`/var/lib/kubelet/kubeadm-flags.env`, `/etc/default/kubelet`): `NAME=value` lines with
//! shell quoting, then the value split into argv words as the unit's `$NAME` would.
//!
//! A subset of the shell, refused loudly outside it: quotes ('…' literal, "…" with `\"`
//! `\\` `\$` `` \` `` escapes), backslash escapes and line continuations, `#` comments
//! (and `;` comment lines, as systemd reads them), optional `export`. Expansions (`$X`,
//! `` `…` ``) and operators (`|&;<>()`) are errors: this reader cannot do what a shell
//! would, so it says so instead of passing the kubelet something else.

use std::fmt;

/// Why an environment file or value was refused, with the line it happened on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct EnvError {
    pub line: usize,
    pub kind: EnvErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvErrorKind {
    UnterminatedDouble,
    UnterminatedSingle,
    TrailingBackslash,
    /// `$` or a backquote outside single quotes.
    Expansion(char),
    /// A shell operator outside quotes.
    Operator(char),
    /// A word that is not `NAME=value` (the file would run it as a command).
    NotAssignment(String),
    /// `NAME=` with a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    BadName(String),
}

impl fmt::Display for EnvErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedDouble => f.write_str("unterminated double quote"),
            Self::UnterminatedSingle => f.write_str("unterminated single quote"),
            Self::TrailingBackslash => f.write_str("backslash at the end of the input"),
            Self::Expansion(c) => {
                write!(f, "unsupported shell expansion {c:?} (quote it with '…')")
            }
            Self::Operator(c) => write!(f, "unsupported shell operator {c:?} (quote it)"),
            Self::NotAssignment(w) => write!(f, "expected NAME=value, found {w:?}"),
            Self::BadName(n) => write!(f, "invalid variable name {n:?}"),
        }
    }
}

/// The assignments of an environment file, in order (a later one wins when read).
pub fn parse_env(text: &str) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for (line, words) in Lexer::new(text, true).commands()? {
        let skip = usize::from(
            words
                .first()
                .is_some_and(|w| w.is_bare("export") && words.len() > 1),
        );
        for word in &words[skip..] {
            out.push(assignment(word).map_err(|kind| EnvError { line, kind })?);
        }
    }
    Ok(out)
}

/// A variable's value as argv words: split at blanks outside quotes, quotes removed.
pub fn split_words(value: &str) -> Result<Vec<String>, EnvError> {
    let commands = Lexer::new(value, false).commands()?;
    Ok(commands
        .into_iter()
        .flat_map(|(_, words)| words.into_iter().map(|w| w.text))
        .collect())
}

fn assignment(word: &Word) -> Result<(String, String), EnvErrorKind> {
    let Some(eq) = word.literal_prefix.find('=') else {
        return Err(EnvErrorKind::NotAssignment(word.text.clone()));
    };
    let name = &word.text[..eq];
    let mut chars = name.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(EnvErrorKind::BadName(name.to_string()));
    }
    Ok((name.to_string(), word.text[eq + 1..].to_string()))
}

/// One word after quote removal, and the part of it before any quote or escape (where
/// an assignment's `=` must be).
#[derive(Debug)]
struct Word {
    text: String,
    literal_prefix: String,
}

impl Word {
    fn is_bare(&self, s: &str) -> bool {
        self.text == s && self.literal_prefix == s
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    /// A file: newlines end commands, comments, expansions and operators are refused.
    /// A value: newlines are blanks and every character but quotes is literal.
    file: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, file: bool) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
            file,
        }
    }

    fn err(&self, kind: EnvErrorKind) -> EnvError {
        EnvError {
            line: self.line,
            kind,
        }
    }

    /// Commands (one per logical line in a file) with their first line number.
    fn commands(mut self) -> Result<Vec<(usize, Vec<Word>)>, EnvError> {
        let mut out = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let mut start = self.line;
        while let Some(&c) = self.chars.peek() {
            match c {
                '\n' if self.file => {
                    self.chars.next();
                    if !words.is_empty() {
                        out.push((start, std::mem::take(&mut words)));
                    }
                    self.line += 1;
                    start = self.line;
                }
                '\n' => {
                    self.chars.next();
                    self.line += 1;
                }
                ' ' | '\t' | '\r' => {
                    self.chars.next();
                }
                '#' if self.file => self.skip_line(),
                ';' if self.file && words.is_empty() => self.skip_line(),
                _ => {
                    if words.is_empty() {
                        start = self.line;
                    }
                    words.push(self.word()?);
                }
            }
        }
        if !words.is_empty() {
            out.push((start, words));
        }
        Ok(out)
    }

    fn skip_line(&mut self) {
        while self.chars.next_if(|&c| c != '\n').is_some() {}
    }

    fn word(&mut self) -> Result<Word, EnvError> {
        let mut text = String::new();
        let mut literal = true;
        let mut literal_prefix = String::new();
        while let Some(&c) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' => break,
                '\\' => {
                    literal = false;
                    self.chars.next();
                    match self.chars.next() {
                        Some('\n') => self.line += 1,
                        Some(e) => text.push(e),
                        None => return Err(self.err(EnvErrorKind::TrailingBackslash)),
                    }
                }
                '\'' => {
                    literal = false;
                    self.single(&mut text)?;
                }
                '"' => {
                    literal = false;
                    self.double(&mut text)?;
                }
                '$' | '`' if self.file => return Err(self.err(EnvErrorKind::Expansion(c))),
                '|' | '&' | ';' | '<' | '>' | '(' | ')' if self.file => {
                    return Err(self.err(EnvErrorKind::Operator(c)))
                }
                _ => {
                    self.chars.next();
                    text.push(c);
                    if literal {
                        literal_prefix.push(c);
                    }
                }
            }
        }
        Ok(Word {
            text,
            literal_prefix,
        })
    }

    fn single(&mut self, text: &mut String) -> Result<(), EnvError> {
        let opened = self.line;
        self.chars.next();
        loop {
            match self.chars.next() {
                Some('\'') => return Ok(()),
                Some(c) => {
                    self.line += usize::from(c == '\n');
                    text.push(c);
                }
                None => {
                    return Err(EnvError {
                        line: opened,
                        kind: EnvErrorKind::UnterminatedSingle,
                    })
                }
            }
        }
    }

    fn double(&mut self, text: &mut String) -> Result<(), EnvError> {
        let opened = self.line;
        let unterminated = EnvError {
            line: opened,
            kind: EnvErrorKind::UnterminatedDouble,
        };
        self.chars.next();
        loop {
            match self.chars.next() {
                Some('"') => return Ok(()),
                Some('\\') => match self.chars.next() {
                    Some('\n') => self.line += 1,
                    Some(e @ ('"' | '\\' | '$' | '`')) => text.push(e),
                    Some(e) => {
                        text.push('\\');
                        text.push(e);
                    }
                    None => return Err(unterminated),
                },
                Some(c @ ('$' | '`')) if self.file => {
                    return Err(self.err(EnvErrorKind::Expansion(c)))
                }
                Some(c) => {
                    self.line += usize::from(c == '\n');
                    text.push(c);
                }
                None => return Err(unterminated),
            }
        }
    }
}

#[cfg(test)]
#[path = "envfile_tests.rs"]
mod tests;
