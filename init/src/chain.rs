//! Turns an error and its `source()` chain, or a caught panic, into one line of text.
//!
//! Owns formatting only; callers decide where the line goes (console, `fatal` event).

use std::any::Any;
use std::error::Error;

/// `outer: cause: root cause`, every level of the chain joined with ": ".
pub fn error_chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Text of a panic payload caught by `catch_unwind`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text payload".to_string()
    };
    format!("panic: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("mount /dev/vda2 on /newroot")]
        Mount(#[source] io::Error),
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("mount root filesystem")]
        Root(#[source] Inner),
        #[error("no source here")]
        Leaf,
    }

    #[test]
    fn joins_every_level() {
        let err = Outer::Root(Inner::Mount(io::Error::from_raw_os_error(libc::EINVAL)));
        assert_eq!(
            error_chain(&err),
            "mount root filesystem: mount /dev/vda2 on /newroot: Invalid argument (os error 22)"
        );
        assert_eq!(error_chain(&Outer::Leaf), "no source here");
    }

    #[test]
    fn formats_panic_payloads() {
        let cases: Vec<(Box<dyn Any + Send>, &str)> = vec![
            (Box::new("boom"), "panic: boom"),
            (Box::new(String::from("owned")), "panic: owned"),
            (Box::new(42u32), "panic: non-text payload"),
        ];
        for (payload, want) in cases {
            assert_eq!(panic_message(payload.as_ref()), want);
        }
    }
}
