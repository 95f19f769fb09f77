//! The DHCPv4 client state machine of RFC 2131 §4.4, without I/O or a clock.
//!
//! The caller feeds it received DHCP payloads (`on_packet`) and the time whenever the
//! deadline it announced passes (`on_timeout`); it answers with [`Action`]s: messages to
//! send and leases to configure or remove. Times are durations since an arbitrary origin
//! (the runner uses CLOCK_BOOTTIME), so tests drive it with plain numbers.
//!
//! Policy choices: the first OFFER wins; no ARP probe of the offered address (no
//! DHCPDECLINE); with `fast_start` DISCOVER and REQUEST retransmit after 1, 2, 4 … s
//! instead of RFC's 4, 8, 16 … s (both capped at 64 s, randomised by up to ±1 s) so a
//! lost first packet costs one second of boot; after 4 unanswered REQUESTs it starts
//! over. RENEWING sends unicast to the server (the transport uses a UDP socket, since we
//! then own an address), REBINDING broadcasts; both retransmit at half the remaining time,
//! at least 60 s (§4.4.5).

use std::net::Ipv4Addr;
use std::time::Duration;

use super::codec::{ClasslessRoute, DhcpMessage, DhcpOption, MessageType, BOOTREPLY};
use super::mask_to_prefix;

const MAX_BACKOFF: Duration = Duration::from_secs(64);
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);
const REQUEST_RETRIES: u32 = 4;
/// Options we ask for (parameter request list, option 55).
const WANTED: [u8; 11] = [1, 3, 6, 12, 15, 26, 51, 54, 58, 59, 121];

/// Where a message goes: broadcast from `src` (0.0.0.0 before we own an address), or
/// unicast from our address to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Broadcast { src: Ipv4Addr },
    Unicast { src: Ipv4Addr, server: Ipv4Addr },
}

/// RFC 2131 client states (INIT-REBOOT and REBOOTING are not used: no lease is stored
/// across boots), plus `Released` after shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpState {
    Init,
    Selecting,
    Requesting,
    Bound,
    Renewing,
    Rebinding,
    Released,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send { message: DhcpMessage, dest: Dest },
    Configure(Lease),
    Deconfigure(Lease),
}

/// A lease as acknowledged by the server. `t1`, `t2` and `expiry` are absolute times
/// on the client's clock; `None` for an infinite lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub hostname: Option<String>,
    pub mtu: Option<u16>,
    /// Classless static routes (option 121); when present, `router` is ignored (RFC 3442).
    pub routes: Vec<ClasslessRoute>,
    pub server: Ipv4Addr,
    pub lease_time: Option<Duration>,
    pub t1: Option<Duration>,
    pub t2: Option<Duration>,
    pub expiry: Option<Duration>,
}

/// Fixed inputs of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub mac: [u8; 6],
    /// Sent as option 12 so that servers can register it in DNS.
    pub hostname: Option<String>,
    /// Fast DISCOVER/REQUEST retransmissions (1 s, 2 s, 4 s …) for boot speed.
    pub fast_start: bool,
    /// Seeds transaction ids and jitter; any value, 0 included.
    pub seed: u64,
}

/// One interface's DHCP client.
#[derive(Debug)]
pub struct DhcpClient {
    config: ClientConfig,
    state: DhcpState,
    rng: u64,
    xid: u32,
    attempt: u32,
    exchange_start: Duration,
    deadline: Option<Duration>,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    lease: Option<Lease>,
}

impl DhcpClient {
    pub fn new(config: ClientConfig) -> Self {
        let rng = config.seed ^ 0x9e37_79b9_7f4a_7c15;
        Self {
            config,
            state: DhcpState::Init,
            rng: if rng == 0 { 1 } else { rng },
            xid: 0,
            attempt: 0,
            exchange_start: Duration::ZERO,
            deadline: None,
            offer: None,
            lease: None,
        }
    }

    pub fn state(&self) -> DhcpState {
        self.state
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// When `on_timeout` must be called next; `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// INIT → SELECTING: broadcasts the first DISCOVER.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        self.restart(now)
    }

    /// Handles one received DHCP payload; anything not for us is ignored.
    pub fn on_packet(&mut self, bytes: &[u8], now: Duration) -> Vec<Action> {
        let Ok(msg) = DhcpMessage::decode(bytes) else {
            return Vec::new();
        };
        if msg.op != BOOTREPLY || msg.xid != self.xid || msg.mac() != self.config.mac {
            return Vec::new();
        }
        match (self.state, msg.message_type()) {
            (DhcpState::Selecting, Some(MessageType::Offer)) => self.on_offer(&msg, now),
            (DhcpState::Requesting, Some(MessageType::Ack)) => {
                let server = self.offer.map(|(_, s)| s);
                if msg.server_id().is_some_and(|s| Some(s) != server) {
                    return Vec::new();
                }
                self.on_ack(&msg, now)
            }
            (DhcpState::Renewing | DhcpState::Rebinding, Some(MessageType::Ack)) => {
                self.on_ack(&msg, now)
            }
            (
                DhcpState::Requesting | DhcpState::Renewing | DhcpState::Rebinding,
                Some(MessageType::Nak),
            ) => {
                let mut actions: Vec<Action> = self
                    .lease
                    .take()
                    .map(Action::Deconfigure)
                    .into_iter()
                    .collect();
                actions.extend(self.restart(now));
                actions
            }
            _ => Vec::new(),
        }
    }

    /// Retransmits or moves on (T1, T2, expiry) when the deadline has passed.
    pub fn on_timeout(&mut self, now: Duration) -> Vec<Action> {
        if self.deadline.is_none_or(|d| now < d) {
            return Vec::new();
        }
        match self.state {
            DhcpState::Init | DhcpState::Released => Vec::new(),
            DhcpState::Selecting => {
                self.attempt += 1;
                vec![self.send_discover(now)]
            }
            DhcpState::Requesting if self.attempt >= REQUEST_RETRIES => self.restart(now),
            DhcpState::Requesting => {
                self.attempt += 1;
                vec![self.send_select_request(now)]
            }
            DhcpState::Bound => {
                self.state = DhcpState::Renewing;
                self.new_exchange(now);
                self.renew_step(now)
            }
            DhcpState::Renewing | DhcpState::Rebinding => self.renew_step(now),
        }
    }

    /// Gives the lease back (DHCPRELEASE) and removes it; the client then stays idle.
    pub fn release(&mut self, _now: Duration) -> Vec<Action> {
        self.state = DhcpState::Released;
        self.deadline = None;
        let Some(lease) = self.lease.take() else {
            return Vec::new();
        };
        self.xid = self.next_u32();
        let mut msg = self.message(MessageType::Release);
        msg.ciaddr = lease.address;
        msg.options.push(DhcpOption::ServerId(lease.server));
        let dest = Dest::Unicast {
            src: lease.address,
            server: lease.server,
        };
        vec![
            Action::Send { message: msg, dest },
            Action::Deconfigure(lease),
        ]
    }

    fn restart(&mut self, now: Duration) -> Vec<Action> {
        self.state = DhcpState::Selecting;
        self.offer = None;
        self.new_exchange(now);
        vec![self.send_discover(now)]
    }

    fn new_exchange(&mut self, now: Duration) {
        self.xid = self.next_u32();
        self.attempt = 0;
        self.exchange_start = now;
    }

    fn on_offer(&mut self, msg: &DhcpMessage, now: Duration) -> Vec<Action> {
        let Some(server) = msg.server_id() else {
            return Vec::new();
        };
        if msg.yiaddr.is_unspecified() {
            return Vec::new();
        }
        self.offer = Some((msg.yiaddr, server));
        self.state = DhcpState::Requesting;
        self.attempt = 0;
        self.exchange_start = now;
        vec![self.send_select_request(now)]
    }

    fn on_ack(&mut self, msg: &DhcpMessage, now: Duration) -> Vec<Action> {
        // Lease times count from the first REQUEST of this exchange (§4.4.1).
        let Some(lease) = lease_from_ack(msg, self.exchange_start) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if let Some(old) = self.lease.take() {
            if old.address != lease.address || old.prefix != lease.prefix {
                actions.push(Action::Deconfigure(old));
            }
        }
        self.state = DhcpState::Bound;
        self.attempt = 0;
        self.deadline = lease.t1.map(|t1| t1.max(now));
        self.lease = Some(lease.clone());
        actions.push(Action::Configure(lease));
        actions
    }

    /// RENEWING/REBINDING: move to REBINDING at T2, to INIT at expiry, else (re)send.
    fn renew_step(&mut self, now: Duration) -> Vec<Action> {
        let Some(lease) = self.lease.clone() else {
            return self.restart(now);
        };
        let (Some(t2), Some(expiry)) = (lease.t2, lease.expiry) else {
            self.state = DhcpState::Bound;
            self.deadline = None;
            return Vec::new();
        };
        if now >= expiry {
            self.lease = None;
            let mut actions = vec![Action::Deconfigure(lease)];
            actions.extend(self.restart(now));
            return actions;
        }
        if now >= t2 && self.state == DhcpState::Renewing {
            self.state = DhcpState::Rebinding;
            self.new_exchange(now);
        }
        let (until, dest) = match self.state {
            DhcpState::Renewing => (
                t2,
                Dest::Unicast {
                    src: lease.address,
                    server: lease.server,
                },
            ),
            _ => (expiry, Dest::Broadcast { src: lease.address }),
        };
        let wait = ((until - now) / 2).max(MIN_RENEW_RETRY);
        self.deadline = Some((now + wait).min(until));
        let mut msg = self.message(MessageType::Request);
        msg.ciaddr = lease.address;
        msg.secs = self.secs(now);
        vec![Action::Send { message: msg, dest }]
    }

    fn send_discover(&mut self, now: Duration) -> Action {
        self.deadline = Some(now + self.backoff());
        let mut msg = self.message(MessageType::Discover);
        msg.secs = self.secs(now);
        Action::Send {
            message: msg,
            dest: Dest::Broadcast {
                src: Ipv4Addr::UNSPECIFIED,
            },
        }
    }

    fn send_select_request(&mut self, now: Duration) -> Action {
        self.deadline = Some(now + self.backoff());
        let mut msg = self.message(MessageType::Request);
        msg.secs = self.secs(now);
        if let Some((addr, server)) = self.offer {
            msg.options.push(DhcpOption::RequestedIp(addr));
            msg.options.push(DhcpOption::ServerId(server));
        }
        Action::Send {
            message: msg,
            dest: Dest::Broadcast {
                src: Ipv4Addr::UNSPECIFIED,
            },
        }
    }

    fn message(&self, kind: MessageType) -> DhcpMessage {
        let mac = self.config.mac;
        let mut msg = DhcpMessage::request(mac, self.xid);
        msg.options.push(DhcpOption::MessageType(kind));
        let mut client_id = vec![1];
        client_id.extend_from_slice(&mac);
        msg.options.push(DhcpOption::ClientId(client_id));
        if kind != MessageType::Release {
            msg.options
                .push(DhcpOption::ParamRequestList(WANTED.to_vec()));
            if let Some(name) = &self.config.hostname {
                msg.options.push(DhcpOption::Hostname(name.clone()));
            }
        }
        msg
    }

    fn secs(&self, now: Duration) -> u16 {
        let secs = now.saturating_sub(self.exchange_start).as_secs();
        u16::try_from(secs).unwrap_or(u16::MAX)
    }

    /// Exponential backoff for `attempt`, capped at 64 s, with up to ±1 s of jitter
    /// (±base/4 for bases under 4 s so that 1 s never becomes 0).
    fn backoff(&mut self) -> Duration {
        let first = if self.config.fast_start { 1 } else { 4 };
        let base = Duration::from_secs(first << self.attempt.min(6)).min(MAX_BACKOFF);
        let spread = (base / 4).min(Duration::from_secs(1)).as_millis() as u64;
        let offset = self.next_u32() as u64 % (2 * spread + 1);
        (base + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(spread))
    }

    fn next_u32(&mut self) -> u32 {
        // xorshift64*: enough for transaction ids and jitter, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// Builds a lease from an ACK received for a REQUEST first sent at `start`.
fn lease_from_ack(msg: &DhcpMessage, start: Duration) -> Option<Lease> {
    if msg.yiaddr.is_unspecified() {
        return None;
    }
    let mut lease = Lease {
        address: msg.yiaddr,
        prefix: classful_prefix(msg.yiaddr),
        router: None,
        dns: Vec::new(),
        domain: None,
        hostname: None,
        mtu: None,
        routes: Vec::new(),
        server: msg.server_id().unwrap_or(msg.siaddr),
        lease_time: None,
        t1: None,
        t2: None,
        expiry: None,
    };
    let (mut secs, mut t1, mut t2) = (None, None, None);
    for option in &msg.options {
        match option {
            DhcpOption::SubnetMask(m) => lease.prefix = mask_to_prefix(*m)?,
            DhcpOption::Router(r) => lease.router = r.first().copied(),
            DhcpOption::DnsServers(d) => lease.dns = d.clone(),
            DhcpOption::DomainName(d) => lease.domain = Some(d.clone()),
            DhcpOption::Hostname(h) => lease.hostname = Some(h.clone()),
            DhcpOption::InterfaceMtu(m) if *m >= 68 => lease.mtu = Some(*m),
            DhcpOption::ClasslessRoutes(r) => lease.routes = r.clone(),
            DhcpOption::LeaseTime(s) => secs = Some(*s),
            DhcpOption::RenewalTime(s) => t1 = Some(*s),
            DhcpOption::RebindingTime(s) => t2 = Some(*s),
            _ => {}
        }
    }
    let secs = secs?;
    if secs != u32::MAX {
        let total = u64::from(secs);
        let t2 = t2
            .map(u64::from)
            .filter(|&t| t <= total)
            .unwrap_or(total * 7 / 8);
        let t1 = t1.map(u64::from).filter(|&t| t <= t2).unwrap_or(total / 2);
        lease.lease_time = Some(Duration::from_secs(total));
        lease.t1 = Some(start + Duration::from_secs(t1));
        lease.t2 = Some(start + Duration::from_secs(t2));
        lease.expiry = Some(start + Duration::from_secs(total));
    }
    Some(lease)
}

/// The pre-CIDR default when a server sends no subnet mask.
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
