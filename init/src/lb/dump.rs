//! `init ipvs-dump` (run as a normal program, not PID 1): the IPVS table as our own
//! netlink code reads it, followed by the raw kernel replies in testdata's hex format.
//! Tests compare the decoded part with `ipvsadm -Ln`; the raw part is how the captures in
//! testdata/ipvs were taken.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::ipvs::{hexdump, Netlink};
use super::model::{Ipvs, IpvsError};

/// The table, one `service …` line per service and one `  dest …` line per real server,
/// then `# raw …` sections.
pub fn dump() -> Result<String, IpvsError> {
    let mut nl = Netlink::open()?;
    let mut text = String::new();
    let mut raw = String::new();
    let services = nl.services()?;
    let _ = writeln!(
        raw,
        "# raw IPVS_CMD_GET_SERVICE dump reply\n{}",
        hexdump(nl.last_reply())
    );
    for s in &services {
        let proto = format!("{:?}", s.key.protocol).to_lowercase();
        let _ = writeln!(
            text,
            "service {proto} {} {} flags {} timeout {} netmask {:x} fwmark {}",
            SocketAddr::new(s.key.addr, s.key.port),
            s.scheduler,
            s.flags,
            s.timeout,
            s.netmask,
            s.fwmark
        );
        let dests = nl.dests(&s.key)?;
        let _ = writeln!(
            raw,
            "# raw IPVS_CMD_GET_DEST dump reply for {}\n{}",
            SocketAddr::new(s.key.addr, s.key.port),
            hexdump(nl.last_reply())
        );
        for d in dests {
            let _ = writeln!(
                text,
                "  dest {} {:?} weight {}",
                SocketAddr::new(d.addr, d.port),
                d.forward,
                d.weight
            );
        }
    }
    text.push_str(&raw);
    Ok(text)
}
