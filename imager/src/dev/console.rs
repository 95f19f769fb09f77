//! `kiln dev logs` (a node's console.log or events.jsonl, optionally followed) and
//! `kiln dev console` (the node's serial console socket; raw terminal on a tty, Ctrl-]
//! quits, the terminal is restored on every exit path).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::state::{Layout, State};

/// Ctrl-]: leaves the console, as with telnet.
const ESCAPE: u8 = 0x1d;

fn loaded(layout: &Layout, node: &str) -> Result<State> {
    if !layout.state_file().is_file() {
        bail!("no dev cluster {}", layout.name);
    }
    let state = State::load(layout)?;
    state.node(node)?;
    Ok(state)
}

/// `kiln dev logs NODE [--follow] [--events]`.
pub fn logs(layout: &Layout, node: &str, follow: bool, events: bool) -> Result<()> {
    loaded(layout, node)?;
    let paths = layout.node(node);
    let path = if events {
        paths.events
    } else {
        paths.console_log
    };
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(offset))
                    .with_context(|| format!("read {}", path.display()))?;
                offset += std::io::copy(&mut f, &mut out)
                    .with_context(|| format!("read {}", path.display()))?;
                out.flush().context("write stdout")?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
        // Stop following once the cluster is gone (`down`).
        if !follow || !paths.dir.is_dir() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kiln dev console NODE`.
pub fn console(layout: &Layout, node: &str) -> Result<()> {
    loaded(layout, node)?;
    let sock = layout.node(node).console_sock;
    let stream = UnixStream::connect(&sock).with_context(|| {
        format!(
            "connect {} (is {node} running? `kiln dev status --name {}`)",
            sock.display(),
            layout.name
        )
    })?;
    let mut reader = stream.try_clone().context("clone console socket")?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let raw = RawTerminal::enter();
    if raw.is_some() {
        eprint!("kiln: dev: console of {node}; Ctrl-] quits\r\n");
    }
    let copied = copy_input(stream, raw.is_some());
    drop(raw);
    copied
}

/// stdin → console until EOF (or Ctrl-] on a terminal). Without a terminal, waits a
/// moment after EOF so replies to piped input still arrive.
fn copy_input(mut stream: UnixStream, tty: bool) -> Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 1024];
    loop {
        let n = stdin.read(&mut buf).context("read stdin")?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let end = match tty {
            true => chunk.iter().position(|b| *b == ESCAPE),
            false => None,
        };
        stream
            .write_all(&chunk[..end.unwrap_or(n)])
            .context("write to the console")?;
        if end.is_some() {
            return Ok(());
        }
    }
    if !tty {
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(())
}

/// The terminal in raw mode while this lives (`None` when stdin is not a terminal).
struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    #[allow(unsafe_code)]
    fn enter() -> Option<RawTerminal> {
        // SAFETY: isatty/tcgetattr/tcsetattr/cfmakeraw only read or write the termios
        // struct we own on the stack; fd 0 is stdin for the whole process.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawTerminal { saved })
        }
    }
}

impl Drop for RawTerminal {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved by `enter` on the same fd.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}
