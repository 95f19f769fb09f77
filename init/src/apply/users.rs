//! cloud-config `users` and `ssh_authorized_keys`: account entries, supplementary
//! groups, home directories and `~/.ssh/authorized_keys`.
//!
//! Follows cloud-init: an existing account is kept (shell, password and lock state are
//! updated, groups added); `lock_passwd` (default true) prefixes `!` to the hash; keys are
//! merged into the existing authorized_keys. Top-level keys go to root (Kiln has no
//! default user).

use std::path::Path;

use super::accounts::{Account, Accounts};
use super::fsx::{self, Ids};
use super::ApplyError;
use crate::config::{NodeConfig, SshKey, User};

/// Shell of new accounts that name none (useradd's default).
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// Creates or updates every account, then their homes and keys; returns how many users
/// were handled (root counts once when it only received top-level keys).
pub(super) fn apply(cfg: &NodeConfig, root: &Path) -> Result<usize, ApplyError> {
    if cfg.users.is_empty() && cfg.ssh_authorized_keys.is_empty() {
        return Ok(0);
    }
    let mut db = Accounts::load(root)?;
    for user in &cfg.users {
        account(&mut db, user)?;
    }
    db.store()?;
    let mut count = 0;
    for user in &cfg.users {
        let acct = db
            .user(user.name.as_str())
            .ok_or_else(|| ApplyError::UnknownUser(user.name.to_string()))?;
        home(root, &acct, &user.ssh_authorized_keys)?;
        count += 1;
    }
    if !cfg.ssh_authorized_keys.is_empty() {
        let acct = db.user("root").unwrap_or(Account {
            uid: 0,
            gid: 0,
            home: "/root".into(),
        });
        home(root, &acct, &cfg.ssh_authorized_keys)?;
        if !cfg.users.iter().any(|u| u.name.as_str() == "root") {
            count += 1;
        }
    }
    Ok(count)
}

/// The passwd, shadow and group entries of one user.
fn account(db: &mut Accounts, user: &User) -> Result<(), ApplyError> {
    let name = user.name.as_str();
    let shell = user.shell.as_ref().map(|s| s.as_str());
    if let Some(s) = shell {
        // AbsPath allows ':' and newlines, which would corrupt /etc/passwd.
        if s.contains([':', '\n', '\r']) {
            return Err(ApplyError::BadShell(s.to_string()));
        }
    }
    for g in &user.groups {
        db.ensure_group(g.as_str())?;
    }
    let existing = db.user(name).is_some();
    if existing {
        if let Some(s) = shell {
            db.passwd.set_field(name, 6, s);
        }
    } else {
        // Lowest id free as both uid and gid: the private group gets the same number.
        let (uid, gid) = if name == "root" {
            (0, db.gid("root").unwrap_or(0))
        } else {
            (db.free_id()?, db.ensure_group(name)?)
        };
        let home = if name == "root" {
            "/root".to_string()
        } else {
            format!("/home/{name}")
        };
        db.passwd.push(format!(
            "{name}:x:{uid}:{gid}::{home}:{}",
            shell.unwrap_or(DEFAULT_SHELL)
        ));
    }
    let current = db.shadow.field(name, 1).map(str::to_string);
    if let Some(field) = password_field(user, current.as_deref(), existing) {
        db.set_password(name, &field);
    }
    for g in &user.groups {
        db.add_member(g.as_str(), name);
    }
    Ok(())
}

/// The /etc/shadow password of `user`, or `None` to leave it as it is.
fn password_field(user: &User, current: Option<&str>, existing: bool) -> Option<String> {
    let hash = user.passwd.as_ref().map(|h| h.as_str());
    match (user.lock_passwd, hash) {
        (true, Some(h)) => Some(format!("!{h}")),
        (true, None) => match current {
            Some(c) if c.starts_with('!') => None,
            Some(c) if existing && !c.is_empty() && c != "*" => Some(format!("!{c}")),
            _ => Some("!".into()),
        },
        (false, Some(h)) => Some(h.to_string()),
        (false, None) if existing && current.is_some() => None,
        (false, None) => Some("*".into()),
    }
}

/// Home (created 0700 when missing), ~/.ssh (0700) and authorized_keys (0600), all owned
/// by the user. An existing home keeps its mode.
fn home(root: &Path, acct: &Account, keys: &[SshKey]) -> Result<(), ApplyError> {
    let ids = Ids::of(acct.uid, acct.gid);
    let home = fsx::under(root, &acct.home);
    if !home.is_dir() {
        fsx::dir(&home, 0o700, ids).map_err(|e| ApplyError::Dir(home.clone(), e))?;
    }
    if keys.is_empty() {
        return Ok(());
    }
    let ssh = home.join(".ssh");
    fsx::dir(&ssh, 0o700, ids).map_err(|e| ApplyError::Dir(ssh.clone(), e))?;
    let path = ssh.join("authorized_keys");
    let old = fsx::read_opt(&path).map_err(|e| ApplyError::Read(path.clone(), e))?;
    let text = merge_keys(old.as_deref().unwrap_or(""), keys);
    fsx::write_atomic(&path, text.as_bytes(), 0o600, ids)
        .map_err(|e| ApplyError::Write(path, e))?;
    Ok(())
}

/// Existing lines first, then each new key not already present.
fn merge_keys(old: &str, keys: &[SshKey]) -> String {
    let mut lines: Vec<&str> = old.lines().collect();
    for k in keys {
        if !lines.contains(&k.as_str()) {
            lines.push(k.as_str());
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
