//! The account databases under the root (/etc/passwd, /etc/group, /etc/shadow and, when
//! the image has one, /etc/gshadow) as editable line tables, plus id allocation.
//!
//! Edits keep every other line (comments included) byte for byte; only changed files are
//! rewritten, atomically, keeping their mode and owner. This module never creates home
//! directories or touches anything outside those four files.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::fsx::{self, Ids};
use super::ApplyError;

/// First uid/gid handed out, and the end of the range (Debian's FIRST_UID/LAST_UID).
pub const FIRST_ID: u32 = 1000;
const LAST_ID: u32 = 59999;

/// One colon-separated database file.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    lines: Vec<String>,
    changed: bool,
}

impl Table {
    pub fn parse(text: &str) -> Self {
        Self {
            lines: text.lines().map(str::to_string).collect(),
            changed: false,
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.split(':').next() == Some(name) && l.contains(':'))
    }

    /// Field `k` (0-based) of the entry called `name`.
    pub fn field(&self, name: &str, k: usize) -> Option<&str> {
        let i = self.index(name)?;
        self.lines[i].split(':').nth(k)
    }

    /// Sets field `k` of `name` (padding missing fields); false when there is no entry.
    pub fn set_field(&mut self, name: &str, k: usize, value: &str) -> bool {
        let Some(i) = self.index(name) else {
            return false;
        };
        let mut fields: Vec<&str> = self.lines[i].split(':').collect();
        if fields.len() <= k {
            fields.resize(k + 1, "");
        }
        if fields[k] != value {
            fields[k] = value;
            self.lines[i] = fields.join(":");
            self.changed = true;
        }
        true
    }

    pub fn push(&mut self, line: String) {
        self.lines.push(line);
        self.changed = true;
    }

    /// Numeric field `k` of every entry.
    fn ids(&self, k: usize) -> impl Iterator<Item = u32> + '_ {
        self.lines
            .iter()
            .filter_map(move |l| l.split(':').nth(k)?.parse().ok())
    }

    /// Adds `user` to the comma-separated member list in field `k` of `group`.
    pub fn add_member(&mut self, group: &str, k: usize, user: &str) {
        let Some(current) = self.field(group, k) else {
            return;
        };
        if current.split(',').any(|m| m == user) {
            return;
        }
        let members = if current.is_empty() {
            user.to_string()
        } else {
            format!("{current},{user}")
        };
        self.set_field(group, k, &members);
    }

    pub fn render(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }
}

/// An account as /etc/passwd has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// All four tables of one root.
#[derive(Debug)]
pub(super) struct Accounts {
    root: PathBuf,
    pub passwd: Table,
    pub group: Table,
    pub shadow: Table,
    /// Only maintained when the image ships /etc/gshadow.
    pub gshadow: Option<Table>,
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";
const SHADOW: &str = "/etc/shadow";
const GSHADOW: &str = "/etc/gshadow";

impl Accounts {
    /// Reads the tables under `root`; missing passwd/group/shadow start empty.
    pub fn load(root: &Path) -> Result<Self, ApplyError> {
        let read = |abs: &str| {
            let path = fsx::under(root, abs);
            fsx::read_opt(&path).map_err(|e| ApplyError::Read(path, e))
        };
        Ok(Self {
            root: root.to_path_buf(),
            passwd: Table::parse(&read(PASSWD)?.unwrap_or_default()),
            group: Table::parse(&read(GROUP)?.unwrap_or_default()),
            shadow: Table::parse(&read(SHADOW)?.unwrap_or_default()),
            gshadow: read(GSHADOW)?.map(|t| Table::parse(&t)),
        })
    }

    pub fn user(&self, name: &str) -> Option<Account> {
        Some(Account {
            uid: self.passwd.field(name, 2)?.parse().ok()?,
            gid: self.passwd.field(name, 3)?.parse().ok()?,
            home: self.passwd.field(name, 5)?.to_string(),
        })
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        self.group.field(name, 2)?.parse().ok()
    }

    /// The lowest id ≥ 1000 used neither as a uid nor as a gid, so a new user's private
    /// group gets the same number; deterministic for a given set of files.
    pub fn free_id(&self) -> Result<u32, ApplyError> {
        let used: BTreeSet<u32> = self.passwd.ids(2).chain(self.group.ids(2)).collect();
        (FIRST_ID..=LAST_ID)
            .find(|id| !used.contains(id))
            .ok_or(ApplyError::NoFreeId)
    }

    /// Creates group `name` with a free gid unless it exists; returns its gid.
    pub fn ensure_group(&mut self, name: &str) -> Result<u32, ApplyError> {
        if let Some(gid) = self.gid(name) {
            return Ok(gid);
        }
        let gid = self.free_id()?;
        self.group.push(format!("{name}:x:{gid}:"));
        if let Some(gs) = &mut self.gshadow {
            gs.push(format!("{name}:!::"));
        }
        Ok(gid)
    }

    pub fn add_member(&mut self, group: &str, user: &str) {
        self.group.add_member(group, 3, user);
        if let Some(gs) = &mut self.gshadow {
            gs.add_member(group, 3, user);
        }
    }

    /// Sets the password field of `name` in /etc/shadow, adding the entry if missing.
    pub fn set_password(&mut self, name: &str, field: &str) {
        if !self.shadow.set_field(name, 1, field) {
            self.shadow.push(format!("{name}:{field}:::::::"));
        }
    }

    /// Writes back every changed table, keeping mode and owner of the existing file
    /// (new files: 0644 root, shadow files 0640 root).
    pub fn store(&self) -> Result<(), ApplyError> {
        self.store_one(PASSWD, &self.passwd, 0o644)?;
        self.store_one(GROUP, &self.group, 0o644)?;
        self.store_one(SHADOW, &self.shadow, 0o640)?;
        if let Some(gs) = &self.gshadow {
            self.store_one(GSHADOW, gs, 0o640)?;
        }
        Ok(())
    }

    fn store_one(&self, abs: &str, table: &Table, default_mode: u32) -> Result<(), ApplyError> {
        if !table.changed {
            return Ok(());
        }
        let path = fsx::under(&self.root, abs);
        let (mode, ids) = match std::fs::metadata(&path) {
            Ok(m) => (m.mode() & 0o7777, Ids::of(m.uid(), m.gid())),
            Err(_) => (default_mode, Ids::default()),
        };
        fsx::write_atomic(&path, table.render().as_bytes(), mode, ids)
            .map_err(|e| ApplyError::Write(path, e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn table_edits_keep_other_lines() {
        let mut t = Table::parse("# comment\nroot:x:0:0:root:/root:/bin/sh\nadm:x:4:\n");
        assert_eq!(t.field("root", 5), Some("/root"));
        assert!(t.set_field("root", 6, "/bin/bash"));
        assert!(!t.set_field("nobody", 6, "/bin/sh"));
        t.add_member("adm", 3, "alice");
        t.add_member("adm", 3, "bob");
        t.add_member("adm", 3, "alice");
        assert_eq!(
            t.render(),
            "# comment\nroot:x:0:0:root:/root:/bin/bash\nadm:x:4:alice,bob\n"
        );
    }

    #[test]
    fn free_id_skips_uids_and_gids() {
        let mut a = Accounts {
            root: PathBuf::from("/nonexistent"),
            passwd: Table::parse("a:x:1000:1000::/home/a:/bin/sh\n"),
            group: Table::parse("a:x:1000:\nb:x:1001:\n"),
            shadow: Table::default(),
            gshadow: None,
        };
        assert_eq!(a.free_id().unwrap(), 1002);
        assert_eq!(a.ensure_group("b").unwrap(), 1001);
        assert_eq!(a.ensure_group("c").unwrap(), 1002);
        a.set_password("a", "!");
        a.set_password("a", "$6$x");
        assert_eq!(a.shadow.render(), "a:$6$x:::::::\n");
    }
}
