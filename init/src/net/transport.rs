//! How DHCP payloads reach the wire: the [`DhcpTransport`] trait and [`RawTransport`], an
//! AF_PACKET socket bound to one interface (ETH_P_IP) that sends whole Ethernet frames
//! built by [`super::frame`] and returns the UDP payloads addressed to port 68.
//!
//! Unicast (RENEWING, RELEASE) goes through an ordinary UDP socket bound to our leased
//! address, so the kernel resolves the server's MAC and routes through a relay if needed;
//! the reply still arrives on the packet socket (which sees every IPv4 frame of the link).
//! That UDP socket stays open and is drained, so the kernel never answers the server with
//! ICMP port-unreachable. The `unsafe` syscall wrappers at the bottom are the only ones of
//! the network code.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::frame::{self, Endpoints, BROADCAST_MAC, CLIENT_PORT, SERVER_PORT};
use super::plan::DhcpTarget;

pub use super::client::Dest;

/// Sends and receives DHCP payloads (the UDP data, not frames) on one interface.
pub trait DhcpTransport: Send {
    fn send(&mut self, payload: &[u8], dest: Dest) -> io::Result<()>;
    /// The next payload sent to the client port, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>>;
}

/// Opens a transport per interface; the runner calls it once per DHCP interface.
pub trait TransportFactory {
    fn open(&self, target: &DhcpTarget) -> io::Result<Box<dyn DhcpTransport>>;
}

/// Opens [`RawTransport`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawFactory;

impl TransportFactory for RawFactory {
    fn open(&self, target: &DhcpTarget) -> io::Result<Box<dyn DhcpTransport>> {
        Ok(Box::new(RawTransport::open(target.index, target.mac)?))
    }
}

/// AF_PACKET transport of one interface.
pub struct RawTransport {
    fd: OwnedFd,
    mac: [u8; 6],
    udp: Option<(Ipv4Addr, UdpSocket)>,
    buf: Vec<u8>,
}

impl RawTransport {
    pub fn open(ifindex: u32, mac: [u8; 6]) -> io::Result<Self> {
        Ok(Self {
            fd: packet_socket(ifindex)?,
            mac,
            udp: None,
            buf: vec![0; 65536],
        })
    }

    fn udp_from(&mut self, src: Ipv4Addr) -> io::Result<&UdpSocket> {
        if self.udp.as_ref().is_none_or(|(a, _)| *a != src) {
            self.udp = None;
            let socket = UdpSocket::bind(SocketAddrV4::new(src, CLIENT_PORT))?;
            socket.set_nonblocking(true)?;
            self.udp = Some((src, socket));
        }
        match &self.udp {
            Some((_, socket)) => Ok(socket),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn drain_udp(&self) {
        if let Some((_, socket)) = &self.udp {
            let mut scratch = [0u8; 1];
            while socket.recv(&mut scratch).is_ok() {}
        }
    }
}

impl DhcpTransport for RawTransport {
    fn send(&mut self, payload: &[u8], dest: Dest) -> io::Result<()> {
        match dest {
            Dest::Broadcast { src } => {
                let ep = Endpoints {
                    src_mac: self.mac,
                    dst_mac: BROADCAST_MAC,
                    src_ip: src,
                    dst_ip: Ipv4Addr::BROADCAST,
                    src_port: CLIENT_PORT,
                    dst_port: SERVER_PORT,
                };
                send_fd(&self.fd, &frame::build(&ep, payload))
            }
            Dest::Unicast { src, server } => {
                let socket = self.udp_from(src)?;
                socket.send_to(payload, SocketAddrV4::new(server, SERVER_PORT))?;
                Ok(())
            }
        }
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_udp();
            let left = deadline.saturating_duration_since(Instant::now());
            if !poll_readable(&self.fd, left)? {
                return Ok(None);
            }
            let n = recv_fd(&self.fd, &mut self.buf)?;
            if let Some(payload) = frame::udp_payload(&self.buf[..n], CLIENT_PORT) {
                return Ok(Some(payload.to_vec()));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An AF_PACKET/SOCK_RAW socket for IPv4 frames, bound to interface `ifindex`.
fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: socket(2) with constant arguments; it returns a new fd or -1.
    #[allow(unsafe_code)]
    let fd = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto),
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data for which all-zero bytes is a valid value.
    #[allow(unsafe_code)]
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_ll and `len` is its exact size.
    #[allow(unsafe_code)]
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            len,
        )
    })?;
    Ok(fd)
}

fn send_fd(fd: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: `frame` is a valid readable buffer of `frame.len()` bytes.
    #[allow(unsafe_code)]
    let n = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
        )
    };
    usize::try_from(n)
        .map(|n| n.min(buf.len()))
        .map_err(|_| io::Error::last_os_error())
}

/// Waits until `fd` is readable; `Ok(false)` on timeout; EINTR counts as a timeout.
fn poll_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid, writable pollfd, matching the count of 1.
    #[allow(unsafe_code)]
    let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
    match ret {
        -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => Ok(false),
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}
