//! PID 1's forever loop: reap zombies and turn signals into shutdowns. Used by stage 2
//! after `ready` and by the maintenance state after a fatal error.
//!
//! Signals arrive through a signalfd (blocked for normal delivery, so none is lost and no
//! async handler runs). SIGCHLD reaps; SIGTERM and SIGUSR2 power off; SIGINT (which is what
//! Ctrl-Alt-Del sends once `RB_DISABLE_CAD` is set) reboots. It owns no services yet.

use std::time::Duration;

use crate::report::Reporter;
use crate::shutdown::{self, Action};
use crate::sys::{self, Reaped, SignalFd};

/// Signals PID 1 handles; block them as early as possible.
pub const SIGNALS: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR2];

/// The shutdown a signal asks for, if any.
pub fn action_for(sig: libc::c_int) -> Option<Action> {
    match sig {
        libc::SIGTERM | libc::SIGUSR2 => Some(Action::Poweroff),
        libc::SIGINT => Some(Action::Reboot),
        _ => None,
    }
}

/// Reaps every exited child; returns how many.
pub fn reap_all() -> usize {
    let mut count = 0;
    while let Reaped::Child(_) = sys::reap_one() {
        count += 1;
    }
    count
}

/// Makes Ctrl-Alt-Del send SIGINT to PID 1 instead of rebooting at once.
pub fn disable_ctrl_alt_del(reporter: &mut Reporter) {
    if let Err(e) = sys::reboot(libc::RB_DISABLE_CAD) {
        reporter.info(&format!("disable Ctrl-Alt-Del: {e}"));
    }
}

/// Serves signals forever. Without a signalfd (creation failed) it still reaps, once a
/// second, but cannot shut down on request.
pub fn serve(reporter: &mut Reporter, signals: Option<SignalFd>) -> ! {
    let Some(mut signals) = signals else {
        reporter.info("no signalfd: reaping only, shutdown requests are ignored");
        loop {
            reap_all();
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    loop {
        reap_all();
        let sig = match signals.wait() {
            Ok(sig) => sig,
            Err(e) => {
                reporter.info(&format!("read signalfd: {e}"));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let Some(action) = action_for(sig) else {
            continue;
        };
        let err = shutdown::shutdown(action, reporter);
        reporter.info(&crate::chain::error_chain(&err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_signals_to_actions() {
        let cases = [
            (libc::SIGTERM, Some(Action::Poweroff)),
            (libc::SIGUSR2, Some(Action::Poweroff)),
            (libc::SIGINT, Some(Action::Reboot)),
            (libc::SIGCHLD, None),
            (libc::SIGHUP, None),
        ];
        for (sig, want) in cases {
            assert_eq!(action_for(sig), want, "signal {sig}");
        }
    }
}
