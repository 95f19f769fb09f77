//! In-memory fakes for the load balancer's host boundary: `FakeIpvs` (an IPVS table that
//! answers like the kernel, records calls, injects failures, and can be flushed behind
//! Kiln's back or seeded with foreign services) and `FakeClock`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::health::Clock;
use super::model::{Dest, Ipvs, IpvsError, Service, ServiceKey};

/// The kernel sets this on every hashed (that is, every live) service.
const IP_VS_SVC_F_HASHED: u32 = 0x0002;

/// One call into the fake, reads included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Services,
    Dests(ServiceKey),
    NewService(ServiceKey, String),
    SetService(ServiceKey, String),
    DelService(ServiceKey),
    NewDest(ServiceKey, SocketAddr, u32),
    SetDest(ServiceKey, SocketAddr, u32),
    DelDest(ServiceKey, SocketAddr),
}

impl Call {
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Services | Call::Dests(_))
    }
}

#[derive(Debug, Default)]
pub struct FakeIpvs {
    table: BTreeMap<ServiceKey, (Service, Vec<Dest>)>,
    calls: Vec<Call>,
    /// Queued failures: the next call of the named method fails with this errno.
    failures: VecDeque<(&'static str, i32)>,
}

fn kernel(op: &'static str, errno: i32) -> IpvsError {
    let text = match errno {
        libc::EEXIST => "File exists",
        libc::ESRCH => "No such process",
        libc::ENOENT => "No such file or directory",
        _ => "injected",
    };
    IpvsError::Kernel {
        op,
        errno,
        text: text.into(),
    }
}

fn addr(d: &Dest) -> SocketAddr {
    SocketAddr::new(d.addr, d.port)
}

impl FakeIpvs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A service someone else (kube-proxy, an operator) created.
    pub fn insert_foreign(&mut self, service: Service, dests: Vec<Dest>) {
        let mut service = service;
        service.flags |= IP_VS_SVC_F_HASHED;
        self.table.insert(service.key, (service, dests));
    }

    /// `ipvsadm -C`.
    pub fn flush(&mut self) {
        self.table.clear();
    }

    /// The next call of `op` ("services", "new_dest", ...) fails with `errno`.
    pub fn fail_next(&mut self, op: &'static str, errno: i32) {
        self.failures.push_back((op, errno));
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.table.get(key).map(|(s, _)| s)
    }

    /// Real servers of a service as (address, weight), in insertion order.
    pub fn weights(&self, key: &ServiceKey) -> Option<Vec<(SocketAddr, u32)>> {
        let (_, dests) = self.table.get(key)?;
        Some(dests.iter().map(|d| (addr(d), d.weight)).collect())
    }

    pub fn keys(&self) -> Vec<ServiceKey> {
        self.table.keys().copied().collect()
    }

    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    pub fn writes(&self) -> Vec<Call> {
        self.calls
            .iter()
            .filter(|c| c.is_write())
            .cloned()
            .collect()
    }

    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    fn enter(&mut self, op: &'static str, call: Call) -> Result<(), IpvsError> {
        self.calls.push(call);
        match self.failures.iter().position(|(o, _)| *o == op) {
            Some(i) => {
                let (_, errno) = self.failures.remove(i).unwrap();
                Err(kernel(op, errno))
            }
            None => Ok(()),
        }
    }

    fn dests_mut(
        &mut self,
        op: &'static str,
        key: &ServiceKey,
    ) -> Result<&mut Vec<Dest>, IpvsError> {
        match self.table.get_mut(key) {
            Some((_, dests)) => Ok(dests),
            None => Err(kernel(op, libc::ESRCH)),
        }
    }
}

impl Ipvs for FakeIpvs {
    fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        self.enter("services", Call::Services)?;
        Ok(self.table.values().map(|(s, _)| s.clone()).collect())
    }

    fn dests(&mut self, service: &ServiceKey) -> Result<Vec<Dest>, IpvsError> {
        self.enter("dests", Call::Dests(*service))?;
        Ok(self.dests_mut("dests", service)?.clone())
    }

    fn new_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let call = Call::NewService(service.key, service.scheduler.clone());
        self.enter("new_service", call)?;
        if self.table.contains_key(&service.key) {
            return Err(kernel("new_service", libc::EEXIST));
        }
        self.insert_foreign(service.clone(), Vec::new());
        Ok(())
    }

    fn set_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let call = Call::SetService(service.key, service.scheduler.clone());
        self.enter("set_service", call)?;
        let Some((current, _)) = self.table.get_mut(&service.key) else {
            return Err(kernel("set_service", libc::ESRCH));
        };
        *current = service.clone();
        current.flags |= IP_VS_SVC_F_HASHED;
        Ok(())
    }

    fn del_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError> {
        self.enter("del_service", Call::DelService(*service))?;
        match self.table.remove(service) {
            Some(_) => Ok(()),
            None => Err(kernel("del_service", libc::ESRCH)),
        }
    }

    fn new_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        self.enter("new_dest", Call::NewDest(*service, addr(dest), dest.weight))?;
        let dests = self.dests_mut("new_dest", service)?;
        if dests.iter().any(|d| addr(d) == addr(dest)) {
            return Err(kernel("new_dest", libc::EEXIST));
        }
        dests.push(dest.clone());
        Ok(())
    }

    fn set_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        self.enter("set_dest", Call::SetDest(*service, addr(dest), dest.weight))?;
        let dests = self.dests_mut("set_dest", service)?;
        match dests.iter_mut().find(|d| addr(d) == addr(dest)) {
            Some(d) => {
                *d = Dest {
                    active_conns: d.active_conns,
                    inactive_conns: d.inactive_conns,
                    ..dest.clone()
                };
                Ok(())
            }
            None => Err(kernel("set_dest", libc::ENOENT)),
        }
    }

    fn del_dest(&mut self, service: &ServiceKey, dest: &Dest) -> Result<(), IpvsError> {
        self.enter("del_dest", Call::DelDest(*service, addr(dest)))?;
        let dests = self.dests_mut("del_dest", service)?;
        let before = dests.len();
        dests.retain(|d| addr(d) != addr(dest));
        if dests.len() == before {
            return Err(kernel("del_dest", libc::ENOENT));
        }
        Ok(())
    }
}

/// A virtual clock shared by a test and the code under test.
#[derive(Debug, Clone, Default)]
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
