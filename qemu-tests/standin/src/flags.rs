//! Command-line flags the way Kubernetes tools take them (spf13/pflag): `--name=value`,
//! `--name value`, `-n value`, `-n=value`, `-nvalue`, bool flags alone or `=true|false`,
//! `--` ends flags. Unknown flags are errors with pflag's wording.

use std::fmt;

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Value,
    /// An integer (klog's `-v`).
    Int,
}

/// One flag a tool accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

pub const fn flag(long: &'static str, short: Option<char>, kind: Kind) -> Spec {
    Spec { long, short, kind }
}

/// klog's verbosity flag, which every Kubernetes tool takes: `-v N`, `--v=N`.
pub const VERBOSITY: Spec = flag("v", Some('v'), Kind::Int);

/// Flags in the order given (bool flags as "true"/"false") and the other arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub flags: Vec<(&'static str, String)>,
    pub args: Vec<String>,
}

impl Parsed {
    /// The last value of `long`.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| *n == long)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `long`, in order.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| *n == long)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn is_true(&self, long: &str) -> bool {
        self.get(long) == Some("true")
    }
}

/// Why the command line was refused (pflag's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    Unknown(String),
    UnknownShort(char, String),
    NeedsArgument(String),
    Invalid {
        value: String,
        flag: String,
        why: &'static str,
    },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Unknown(name) => write!(f, "unknown flag: --{name}"),
            FlagError::UnknownShort(c, arg) => write!(f, "unknown shorthand flag: '{c}' in {arg}"),
            FlagError::NeedsArgument(name) => write!(f, "flag needs an argument: {name}"),
            FlagError::Invalid { value, flag, why } => {
                write!(f, "invalid argument {value:?} for {flag:?} flag: {why}")
            }
        }
    }
}

impl std::error::Error for FlagError {}

fn describe(spec: &Spec) -> String {
    match spec.short {
        Some(c) => format!("-{c}, --{}", spec.long),
        None => format!("--{}", spec.long),
    }
}

fn checked(spec: &Spec, value: String) -> Result<(&'static str, String), FlagError> {
    let bad = |why| FlagError::Invalid {
        value: value.clone(),
        flag: describe(spec),
        why,
    };
    match spec.kind {
        Kind::Bool if value != "true" && value != "false" => Err(bad("not true or false")),
        Kind::Int if value.parse::<i64>().is_err() => Err(bad("not an integer")),
        _ => Ok((spec.long, value)),
    }
}

/// Parses `args` against `specs`.
pub fn parse(args: &[String], specs: &[Spec]) -> Result<Parsed, FlagError> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.args.extend(it.by_ref().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| FlagError::Unknown(name.to_string()))?;
            let value = match (spec.kind, inline) {
                (_, Some(v)) => v,
                (Kind::Bool, None) => "true".into(),
                (_, None) => it
                    .next()
                    .cloned()
                    .ok_or_else(|| FlagError::NeedsArgument(format!("--{name}")))?,
            };
            out.flags.push(checked(spec, value)?);
        } else if arg.len() > 1 && arg.starts_with('-') {
            shorthands(arg, &mut it, specs, &mut out)?;
        } else {
            out.args.push(arg.clone());
        }
    }
    Ok(out)
}

/// `-abc`, `-f value`, `-fvalue`, `-f=value`.
fn shorthands(
    arg: &str,
    rest: &mut std::slice::Iter<'_, String>,
    specs: &[Spec],
    out: &mut Parsed,
) -> Result<(), FlagError> {
    let body = &arg[1..];
    for (i, c) in body.char_indices() {
        let spec = specs
            .iter()
            .find(|s| s.short == Some(c))
            .ok_or_else(|| FlagError::UnknownShort(c, arg.to_string()))?;
        let after = &body[i + c.len_utf8()..];
        if spec.kind == Kind::Bool {
            if let Some(v) = after.strip_prefix('=') {
                out.flags.push(checked(spec, v.to_string())?);
                return Ok(());
            }
            out.flags.push((spec.long, "true".into()));
            continue;
        }
        let value = if after.is_empty() {
            rest.next()
                .cloned()
                .ok_or_else(|| FlagError::NeedsArgument(format!("'{c}' in {arg}")))?
        } else {
            after.strip_prefix('=').unwrap_or(after).to_string()
        };
        out.flags.push(checked(spec, value)?);
        return Ok(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        flag("config", None, Kind::Value),
        flag("upload-certs", None, Kind::Bool),
        flag("filename", Some('f'), Kind::Value),
        flag("recursive", Some('R'), Kind::Bool),
        VERBOSITY,
    ];

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn accepts_pflag_forms() {
        // (command line, flags parsed, other arguments)
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let table: &[Case] = &[
            ("init --config /k.yaml", &[("config", "/k.yaml")], &["init"]),
            (
                "init --config=/k.yaml -v 5",
                &[("config", "/k.yaml"), ("v", "5")],
                &["init"],
            ),
            ("--v=2 init", &[("v", "2")], &["init"]),
            ("-v=3 -v4", &[("v", "3"), ("v", "4")], &[]),
            ("--upload-certs x", &[("upload-certs", "true")], &["x"]),
            ("--upload-certs=false", &[("upload-certs", "false")], &[]),
            (
                "-Rf dir",
                &[("recursive", "true"), ("filename", "dir")],
                &[],
            ),
            (
                "-fdir -f=other",
                &[("filename", "dir"), ("filename", "other")],
                &[],
            ),
            ("apply -- --config", &[], &["apply", "--config"]),
            ("-", &[], &["-"]),
        ];
        for (line, flags, positional) in table {
            let Ok(p) = parse(&args(line), SPECS) else {
                panic!("{line}: refused");
            };
            let want: Vec<(&str, String)> =
                flags.iter().map(|(n, v)| (*n, v.to_string())).collect();
            assert_eq!(p.flags, want, "{line}");
            assert_eq!(p.args, *positional, "{line}");
        }
    }

    #[test]
    fn refuses_with_pflag_messages() {
        let table = [
            ("init --foo", "unknown flag: --foo"),
            ("init --foo=bar", "unknown flag: --foo"),
            ("-x", "unknown shorthand flag: 'x' in -x"),
            ("-Rx", "unknown shorthand flag: 'x' in -Rx"),
            ("init --config", "flag needs an argument: --config"),
            ("-f", "flag needs an argument: 'f' in -f"),
            (
                "-v five",
                "invalid argument \"five\" for \"-v, --v\" flag: not an integer",
            ),
            (
                "--upload-certs=yes",
                "invalid argument \"yes\" for \"--upload-certs\" flag: not true or false",
            ),
        ];
        for (line, want) in table {
            match parse(&args(line), SPECS) {
                Err(e) => assert_eq!(e.to_string(), want, "{line}"),
                Ok(p) => panic!("{line}: accepted as {p:?}"),
            }
        }
    }

    #[test]
    fn last_value_wins_and_all_keeps_order() {
        let Ok(p) = parse(&args("-f a -f b --config c"), SPECS) else {
            panic!("refused");
        };
        assert_eq!(p.get("filename"), Some("b"));
        assert_eq!(p.all("filename"), ["a", "b"]);
        assert!(!p.is_true("upload-certs"));
    }
}
