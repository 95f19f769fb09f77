//! First-level attributes: the SERVICE and DEST nests of IPVS messages, and the
//! attributes of generic-netlink controller (`nlctrl`) messages that the family lookup
//! needs. Unknown ones are kept as `Other`. Pure and panic-free like `attrs`.

use netlink_packet_core::{parse_u16, DecodeError, Emitable, ErrorContext, Nla, NlaBuffer};
// CTRL_ATTR_* from linux/genetlink.h.
use netlink_packet_generic::constants::{CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME};

use super::attrs::{parse_all, put_str, string, DestAttr, ServiceAttr};

// IPVS_CMD_ATTR_*: first-level attributes of every IPVS command.
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;

/// A first-level attribute of an IPVS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdAttr {
    Service(Vec<ServiceAttr>),
    Dest(Vec<DestAttr>),
    Other { kind: u16, data: Vec<u8> },
}

/// An attribute of a generic-netlink controller (`nlctrl`) message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtrlAttr {
    FamilyId(u16),
    FamilyName(String),
    Other { kind: u16, data: Vec<u8> },
}

/// Emitted length of a run of attributes (each padded to 4 bytes).
fn run_len<T: Nla>(attrs: &[T]) -> usize {
    attrs.iter().map(Emitable::buffer_len).sum()
}

fn emit_run<T: Nla>(attrs: &[T], buf: &mut [u8]) {
    let mut at = 0;
    for attr in attrs {
        let len = Emitable::buffer_len(attr);
        Emitable::emit(attr, &mut buf[at..at + len]);
        at += len;
    }
}

impl CmdAttr {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            IPVS_CMD_ATTR_SERVICE => {
                Self::Service(parse_all(v, ServiceAttr::parse).context("IPVS_CMD_ATTR_SERVICE")?)
            }
            IPVS_CMD_ATTR_DEST => {
                Self::Dest(parse_all(v, DestAttr::parse).context("IPVS_CMD_ATTR_DEST")?)
            }
            kind => Self::Other {
                kind,
                data: v.to_vec(),
            },
        })
    }
}

// The kernel nests with nla_nest_start_noflag() and parses with the deprecated (liberal)
// validator, and ipvsadm sends nests without NLA_F_NESTED: so do we.
impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(a) => run_len(a),
            Self::Dest(a) => run_len(a),
            Self::Other { data, .. } => data.len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => IPVS_CMD_ATTR_SERVICE,
            Self::Dest(_) => IPVS_CMD_ATTR_DEST,
            Self::Other { kind, .. } => *kind,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Self::Service(a) => emit_run(a, buf),
            Self::Dest(a) => emit_run(a, buf),
            Self::Other { data, .. } => buf.copy_from_slice(data),
        }
    }
}

impl CtrlAttr {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            CTRL_ATTR_FAMILY_ID => Self::FamilyId(parse_u16(v).context("CTRL_ATTR_FAMILY_ID")?),
            CTRL_ATTR_FAMILY_NAME => Self::FamilyName(string(v).context("CTRL_ATTR_FAMILY_NAME")?),
            kind => Self::Other {
                kind,
                data: v.to_vec(),
            },
        })
    }
}

impl Nla for CtrlAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::FamilyId(_) => 2,
            Self::FamilyName(s) => s.len() + 1,
            Self::Other { data, .. } => data.len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::FamilyId(_) => CTRL_ATTR_FAMILY_ID,
            Self::FamilyName(_) => CTRL_ATTR_FAMILY_NAME,
            Self::Other { kind, .. } => *kind,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Self::FamilyId(v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Self::FamilyName(s) => put_str(buf, s),
            Self::Other { data, .. } => buf.copy_from_slice(data),
        }
    }
}
