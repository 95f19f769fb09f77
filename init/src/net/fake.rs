//! Hand-written fakes for the network boundary: a recording [`Netlink`], a virtual clock,
//! and a transport with a tiny built-in DHCP server. Compiled only for unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::client::Dest;
use super::codec::{DhcpMessage, DhcpOption, MessageType, BOOTREPLY};
use super::netlink::{Link, LinkKind, Netlink, NetlinkError, Route};
use super::plan::DhcpTarget;
use super::runner::Clock;
use super::transport::{DhcpTransport, TransportFactory};
use super::Cidr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    SetUp(u32),
    SetMtu(u32, u32),
    SetName(u32, String),
    AddDummy(String),
    AddAddress(u32, Cidr),
    DelAddress(u32, Cidr),
    AddRoute(String),
    DelRoute(String),
}

/// Records every call; `fail_on("set_mtu")` makes that operation fail. Clones share state.
#[derive(Clone, Default)]
pub struct FakeNetlink {
    links: Vec<Link>,
    calls: Arc<Mutex<Vec<Call>>>,
    fail: Arc<Mutex<Vec<&'static str>>>,
}

pub fn link(index: u32, name: &str, kind: LinkKind) -> Link {
    Link {
        index,
        name: name.into(),
        mac: (kind != LinkKind::Loopback).then_some([0x52, 0x54, 0, 0, 0, index as u8]),
        up: false,
        mtu: 1500,
        kind,
    }
}

impl FakeNetlink {
    pub fn new(links: Vec<Link>) -> Self {
        Self {
            links,
            ..Self::default()
        }
    }

    pub fn fail_on(&self, op: &'static str) {
        self.fail.lock().unwrap().push(op);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, op: &'static str, call: Call) -> Result<(), NetlinkError> {
        self.calls.lock().unwrap().push(call);
        if self.fail.lock().unwrap().contains(&op) {
            return Err(NetlinkError::Kernel(
                op.into(),
                io::Error::other("injected"),
            ));
        }
        Ok(())
    }
}

impl Netlink for FakeNetlink {
    fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        if self.fail.lock().unwrap().contains(&"links") {
            return Err(NetlinkError::Kernel(
                "links".into(),
                io::Error::other("injected"),
            ));
        }
        Ok(self.links.clone())
    }
    fn set_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        self.record("set_up", Call::SetUp(index))
    }
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.record("set_mtu", Call::SetMtu(index, mtu))
    }
    fn set_name(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.record("set_name", Call::SetName(index, name.to_string()))
    }
    fn add_dummy(&mut self, name: &str) -> Result<(), NetlinkError> {
        self.record("add_dummy", Call::AddDummy(name.to_string()))
    }
    fn add_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError> {
        self.record("add_address", Call::AddAddress(index, addr))
    }
    fn del_address(&mut self, index: u32, addr: Cidr) -> Result<(), NetlinkError> {
        self.record("del_address", Call::DelAddress(index, addr))
    }
    fn add_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.record("add_route", Call::AddRoute(route.to_string()))
    }
    fn del_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.record("del_route", Call::DelRoute(route.to_string()))
    }
}

/// A virtual clock shared by the test and the fake transports.
#[derive(Clone, Default)]
pub struct FakeClock(Arc<Mutex<Duration>>);

impl FakeClock {
    pub fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// How the fake server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Answer,
    Silent,
    Nak,
}

/// The fake DHCP server's state, shared by all transports of a factory.
pub struct Server {
    pub mode: Mode,
    pub lease_secs: u32,
    /// (interface, message type, destination) of every message the clients sent.
    pub seen: Vec<(String, MessageType, Dest)>,
}

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// Offered address: 10.0.2.(100 + last MAC byte).
pub fn offered(mac: [u8; 6]) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, 100 + mac[5])
}

#[derive(Clone)]
pub struct FakeFactory {
    pub server: Arc<Mutex<Server>>,
    pub clock: FakeClock,
}

impl FakeFactory {
    pub fn new(mode: Mode, lease_secs: u32, clock: FakeClock) -> Self {
        let server = Server {
            mode,
            lease_secs,
            seen: Vec::new(),
        };
        Self {
            server: Arc::new(Mutex::new(server)),
            clock,
        }
    }

    pub fn seen(&self) -> Vec<(String, MessageType, Dest)> {
        self.server.lock().unwrap().seen.clone()
    }
}

impl TransportFactory for FakeFactory {
    fn open(&self, target: &DhcpTarget) -> io::Result<Box<dyn DhcpTransport>> {
        if target.name.starts_with("broken") {
            return Err(io::Error::other("injected open failure"));
        }
        Ok(Box::new(FakeTransport {
            name: target.name.clone(),
            server: self.server.clone(),
            clock: self.clock.clone(),
            queue: VecDeque::new(),
        }))
    }
}

struct FakeTransport {
    name: String,
    server: Arc<Mutex<Server>>,
    clock: FakeClock,
    queue: VecDeque<Vec<u8>>,
}

impl DhcpTransport for FakeTransport {
    fn send(&mut self, payload: &[u8], dest: Dest) -> io::Result<()> {
        let req = DhcpMessage::decode(payload).unwrap();
        let kind = req.message_type().unwrap();
        let mut server = self.server.lock().unwrap();
        server.seen.push((self.name.clone(), kind, dest));
        let answer = match (server.mode, kind) {
            (Mode::Silent, _) | (_, MessageType::Release) => return Ok(()),
            (_, MessageType::Discover) => MessageType::Offer,
            (Mode::Nak, _) => MessageType::Nak,
            _ => MessageType::Ack,
        };
        let mut reply = DhcpMessage::request(req.mac(), req.xid);
        reply.op = BOOTREPLY;
        reply.yiaddr = offered(req.mac());
        reply.options = vec![
            DhcpOption::MessageType(answer),
            DhcpOption::ServerId(SERVER_IP),
            DhcpOption::LeaseTime(server.lease_secs),
            DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
            DhcpOption::Router(vec![SERVER_IP]),
            DhcpOption::DnsServers(vec![Ipv4Addr::new(10, 0, 2, 3)]),
            DhcpOption::DomainName("example.test".into()),
        ];
        self.queue.push_back(reply.encode());
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if let Some(p) = self.queue.pop_front() {
            return Ok(Some(p));
        }
        // Virtual time passes quickly; a little real time keeps the threads fair.
        self.clock.advance(timeout);
        std::thread::sleep(Duration::from_millis(1));
        Ok(None)
    }
}
