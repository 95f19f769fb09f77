//! Assembles the raw disk (GPT or MBR, ESP, root slot A) and converts it to the spec's formats.
//!
//! Owns output naming (`<out>/<name>.raw`, `.qcow2`) and the write-to-temporary-then-rename
//! rule: nothing appears at an output path unless the whole image was written.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::esp::EspPlan;
use crate::gpt;
use crate::size::Size;
use crate::spec::{Format, Layout, Spec};

/// Removes a temporary file unless disarmed, so failures leave nothing behind.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn check_fits(what: &str, part: &gpt::Partition, len: u64) -> Result<()> {
    if len > part.size {
        bail!(
            "{what} is {} but partition {} holds {} (raise disk.root_size / disk.esp_size)",
            Size(len),
            part.name,
            Size(part.size)
        );
    }
    Ok(())
}

/// Writes the raw image to a temporary path and returns it (guarded).
fn write_raw(spec: &Spec, out: &Path, esp: EspPlan, root: &[u8]) -> Result<TmpGuard> {
    let plan = gpt::plan(&spec.disk, spec.arch, &spec.name);
    let (Some(esp_part), Some(root_part)) = (plan.partition("EFI"), plan.partition("KILN-ROOT-A"))
    else {
        bail!("disk plan lacks EFI or KILN-ROOT-A");
    };
    check_fits("the root squashfs", root_part, root.len() as u64)?;
    check_fits(
        "the ESP content",
        esp_part,
        esp.bytes() + esp.bytes() / 50 + (2 << 20),
    )?;
    let tmp = crate::pipeline::tmp_path(&out.join(format!("{}.raw", spec.name)));
    let guard = TmpGuard(Some(tmp.clone()));
    let mut f = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    f.set_len(plan.size)
        .with_context(|| format!("size {}", tmp.display()))?;
    match spec.disk.layout {
        Layout::Gpt => gpt::write(&plan, &mut f)?,
        Layout::Mbr => crate::mbr::write(&plan, &spec.name, &mut f)?,
    }
    esp.builder()?
        .write_to(&f, esp_part.offset, esp_part.size)?;
    f.write_all_at(root, root_part.offset)
        .with_context(|| format!("write root to {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", tmp.display()))?;
    Ok(guard)
}

fn sha256_file(p: &Path) -> Result<String> {
    crate::digest::sha256_file(p).with_context(|| format!("read {}", p.display()))
}

/// Writes every requested format; returns (path, size on disk, sha256 of qcow2 or "").
pub fn write_outputs(
    spec: &Spec,
    out: &Path,
    esp: EspPlan,
    root: &[u8],
) -> Result<Vec<(PathBuf, u64, String)>> {
    let mut raw = write_raw(spec, out, esp, root)?;
    let raw_tmp = raw.0.clone().unwrap_or_default();
    let mut done = Vec::new();
    if spec.formats.contains(&Format::Qcow2) {
        let dest = out.join(format!("{}.qcow2", spec.name));
        let tmp = crate::pipeline::tmp_path(&dest);
        let mut guard = TmpGuard(Some(tmp.clone()));
        let stats = crate::qcow2::write_qcow2(&raw_tmp, &tmp)?;
        let digest = sha256_file(&tmp)?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("rename to {}", dest.display()))?;
        guard.0 = None;
        done.push((dest, stats.file_size, digest));
    }
    if spec.formats.contains(&Format::Raw) {
        let dest = out.join(format!("{}.raw", spec.name));
        std::fs::rename(&raw_tmp, &dest)
            .with_context(|| format!("rename to {}", dest.display()))?;
        raw.0 = None;
        let used = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&dest)?) * 512;
        done.insert(0, (dest, used, String::new()));
    }
    Ok(done)
}
