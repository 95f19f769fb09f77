//! cloud-config `write_files`: content (already decoded), permissions, owner, append.
//! Owners are resolved by name from /etc/passwd and /etc/group under the root, which is
//! why `defer: true` entries are written after the users exist.

use std::path::Path;

use super::accounts::Accounts;
use super::fsx::{self, Ids};
use super::ApplyError;
use crate::config::WriteFile;

/// Writes the entries whose `defer` equals `deferred`; returns how many.
pub(super) fn apply(files: &[WriteFile], root: &Path, deferred: bool) -> Result<usize, ApplyError> {
    let todo: Vec<&WriteFile> = files.iter().filter(|f| f.defer == deferred).collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let db = Accounts::load(root)?;
    for f in &todo {
        let ids = owner(&db, f)?;
        let path = fsx::under(root, f.path.as_str());
        let mode = f.permissions.0;
        let written = if f.append {
            fsx::append(&path, &f.content, mode, ids)
        } else {
            fsx::write_atomic(&path, &f.content, mode, ids)
        };
        written.map_err(|e| ApplyError::Write(path, e))?;
    }
    Ok(todo.len())
}

/// `user` or `user:group` to ids. With no group the file keeps the group it was created
/// with (root's), as cloud-init's `chownbyname(path, user, None)` does.
fn owner(db: &Accounts, f: &WriteFile) -> Result<Ids, ApplyError> {
    let (user, group) = match f.owner.as_str().split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (f.owner.as_str(), None),
    };
    let unknown = |name: &str| ApplyError::UnknownOwner {
        path: f.path.to_string(),
        name: name.to_string(),
    };
    let uid = match db.user(user) {
        Some(a) => a.uid,
        None if user == "root" => 0,
        None => return Err(unknown(user)),
    };
    let gid = match group {
        None => None,
        Some(g) => Some(match db.gid(g) {
            Some(gid) => gid,
            None if g == "root" => 0,
            None => return Err(unknown(g)),
        }),
    };
    Ok(Ids {
        uid: Some(uid),
        gid,
    })
}
