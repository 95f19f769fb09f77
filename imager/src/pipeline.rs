//! `kiln build`: spec → resolved packages → root tree → squashfs, initramfs, ESP → disk.
//!
//! Owns the order of the phases, the lock policy and where outputs go. Every output is
//! written to a temporary name in the output folder and renamed only when complete.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::debian::fetch::{FetchItem, Fetcher};
use crate::debian::{mirror, resolve, source};
use crate::lock::{self, Lock, LockedPackage};
use crate::progress::Progress;
use crate::spec::{self, Spec};
use crate::{
    artifacts, disk, initramfs, kconfig, kubernetes, modules, rootfs, squashfs, stage2_modules,
};

pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// None: the built-in spec.
    pub spec: Option<PathBuf>,
    pub out: PathBuf,
    pub lock: Option<PathBuf>,
    pub locked: bool,
    pub mirror: Option<String>,
    pub init: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    pub quiet: bool,
    /// `--format`: replaces the spec's `formats` when given.
    pub formats: Option<Vec<spec::Format>>,
    /// `--arch`: replaces the spec's `arch` when given.
    pub arch: Option<spec::Arch>,
    /// `--layout`: replaces the spec's `disk.layout` when given.
    pub layout: Option<spec::Layout>,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub name: String,
    pub outputs: Vec<(PathBuf, u64, String)>,
    pub squashfs_bytes: u64,
    pub root_files: usize,
    pub packages: usize,
    pub seconds: f64,
}

pub fn load_spec(opts: &BuildOptions) -> Result<(Spec, PathBuf)> {
    match &opts.spec {
        None => Ok((
            spec::parse(spec::DEFAULT_SPEC, "built-in spec")?,
            opts.out.join("kiln.lock"),
        )),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read spec {}", p.display()))?;
            let s = spec::parse(&text, &p.display().to_string())?;
            Ok((s, p.with_extension("lock")))
        }
    }
}

fn mirror_for(opts: &BuildOptions, spec: &Spec) -> Result<String> {
    if let Some(m) = opts.mirror.clone().or_else(|| spec.debian.mirror.clone()) {
        return Ok(m);
    }
    mirror::host_mirror().context(
        "no Debian mirror: pass --mirror URL, set debian.mirror in the spec, or configure apt sources",
    )
}

fn init_bytes(opts: &BuildOptions, spec: &Spec) -> Result<Vec<u8>> {
    if let Some(p) = &opts.init {
        return std::fs::read(p).with_context(|| format!("read init {}", p.display()));
    }
    let embedded = match spec.arch {
        spec::Arch::X86_64 => crate::embedded::INIT_X86_64,
        spec::Arch::Aarch64 => crate::embedded::INIT_AARCH64,
    };
    match embedded {
        Some(b) => Ok(b.to_vec()),
        None => bail!(
            "this kiln carries no init for {:?}: pass --init PATH",
            spec.arch
        ),
    }
}

fn check_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("create output folder {}", out.display()))?;
    let probe = out.join(".kiln-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("output folder {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn to_lock(spec: &Spec, pkgs: &[crate::debian::packages::Package]) -> Lock {
    Lock {
        version: lock::VERSION,
        suite: spec.debian.suite.clone(),
        arch: spec.arch.debian().to_string(),
        packages: pkgs
            .iter()
            .map(|p| LockedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                filename: p.filename.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect(),
        artifacts: vec![],
        kubernetes_binaries: vec![],
        kubernetes_images: vec![],
    }
}

/// Resolves the spec's packages against the signed index; with `locked`, demands equality.
fn resolve_packages(
    spec: &Spec,
    fetcher: &Fetcher,
    lock_path: &Path,
    locked: bool,
    p: &Progress,
) -> Result<(Lock, Option<Lock>)> {
    p.phase("index");
    let keyring_path = spec
        .debian
        .keyring
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING));
    let keyring = std::fs::read(&keyring_path).with_context(|| {
        format!(
            "read keyring {} (install debian-archive-keyring or set debian.keyring)",
            keyring_path.display()
        )
    })?;
    let src = source::load(
        fetcher,
        &spec.debian.suite,
        &spec.debian.components,
        spec.arch.debian(),
        &keyring,
    )?;
    p.note(&format!(
        "{} {}, {} packages",
        src.release.codename,
        src.release.date,
        src.packages.len()
    ));
    p.phase("resolve");
    let index = resolve::Index::new(src.packages);
    let pkgs = resolve::resolve(&index, &spec.debian.packages, &spec.debian.exclude)?;
    p.note(&format!("{} packages", pkgs.len()));
    let resolved = to_lock(spec, &pkgs);
    if locked {
        let text = std::fs::read_to_string(lock_path)
            .with_context(|| format!("--locked: read lock file {}", lock_path.display()))?;
        let l = lock::parse(&text, &lock_path.display().to_string())?;
        lock::check(&l, &resolved, &lock_path.display().to_string())?;
        return Ok((resolved, Some(l)));
    }
    Ok((resolved, None))
}

/// Builds the image; on failure, an output folder this call created is removed again
/// (only if still empty), so a failed build leaves nothing behind.
pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let existed = opts.out.exists();
    let r = build_inner(opts);
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir(&opts.out);
    }
    r
}

fn build_inner(opts: &BuildOptions) -> Result<BuildReport> {
    let p = Progress::new(opts.quiet);
    let (mut spec, default_lock) = load_spec(opts)?;
    if let Some(formats) = &opts.formats {
        if formats.is_empty() {
            bail!("--format: give at least one of raw, qcow2, pxe");
        }
        spec.formats = formats.clone();
    }
    spec.for_arch(opts.arch);
    if let Some(layout) = opts.layout {
        spec.disk.layout = layout;
        spec::validate_layout(&spec.disk).map_err(|e| anyhow::anyhow!("--layout: {e}"))?;
    }
    let lock_path = opts.lock.clone().unwrap_or(default_lock);
    check_out_dir(&opts.out)?;
    let init = init_bytes(opts, &spec)?;
    let mirror = mirror_for(opts, &spec)?;
    let cache = opts
        .cache
        .clone()
        .unwrap_or_else(Fetcher::default_cache_dir);
    let fetcher = Fetcher::new(&mirror, cache.clone());
    let (mut lock, locked) = resolve_packages(&spec, &fetcher, &lock_path, opts.locked, &p)?;

    p.phase("download");
    let items: Vec<FetchItem> = lock
        .packages
        .iter()
        .map(|l| FetchItem {
            rel: l.filename.clone(),
            size: l.size,
            sha256: l.sha256.clone(),
        })
        .collect();
    let total: u64 = items.iter().map(|i| i.size).sum();
    let files = fetcher.fetch_all(&items, 4, &|n, done, all| p.bytes("download", n, done, all))?;
    p.note(&format!("{} files, {} MiB", files.len(), total >> 20));

    p.phase("extract");
    let named: Vec<(String, PathBuf)> = lock
        .packages
        .iter()
        .map(|l| l.name.clone())
        .zip(files)
        .collect();
    let mut tree = rootfs::from_packages(&named, 2)?;
    let kernel = modules::Kernel::find(&tree)?;
    let release = kernel.release.clone();
    let module_deps = stage2_modules::plan(&kernel, &stage2_modules::wanted(spec.arch))?;
    let kernel_image = take_file(&tree, &format!("boot/vmlinuz-{release}"))?;
    let config = take_file(&tree, &format!("boot/config-{release}"))?;
    kconfig::check(&String::from_utf8_lossy(&config), spec.arch, &release)?;
    p.note(&format!("{} entries, kernel {release}", tree.len()));

    p.phase("initramfs");
    let initrd = initramfs::build(&kernel, spec.arch, &init)?;
    p.note(&format!(
        "{} modules, {} KiB",
        initrd.modules.len(),
        initrd.bytes.len() >> 10
    ));
    // The network-boot initramfs also carries NIC drivers and loop (PXE_MODULES).
    let pxe_initrd = if spec.formats.contains(&spec::Format::Pxe) {
        let i = initramfs::build_with(&kernel, spec.arch, &init, initramfs::PXE_MODULES)?;
        p.note(&format!(
            "pxe initrd: {} modules, {} KiB",
            i.modules.len(),
            i.bytes.len() >> 10
        ));
        Some(i)
    } else {
        None
    };
    let loader = take_file(&tree, crate::esp::loader_path(spec.arch).0)?;

    p.phase("root");
    tree.remove_prefix(&format!("boot/vmlinuz-{release}"));
    rootfs::drop_modules(&mut tree, &release, &spec.debian.drop_modules);
    module_deps.add_to(&mut tree)?;
    rootfs::ca_bundle(&mut tree)?;
    let search = overlay_search(opts);
    rootfs::apply_overlays(&mut tree, &spec.overlays, &search)?;
    rootfs::fix_secret_modes(&mut tree)?;
    lock.artifacts = artifacts::add(&spec.artifacts, &mut tree, &cache)?;
    tree.add_file("usr/sbin/init", 0o755, init)?;

    // -- kubernetes: binaries, images and manifests of `[kubernetes]` (crate::kubernetes) --
    if spec.kubernetes.is_some() {
        p.phase("kubernetes");
    }
    let pins = kubernetes::Pins::for_build(locked.as_ref(), &lock_path);
    let baked = kubernetes::bake(
        spec.kubernetes.as_ref(),
        spec.arch,
        &mut tree,
        &cache,
        &pins,
    )?;
    if spec.kubernetes.is_some() {
        p.note(&format!(
            "{} binaries, {} images, {} archives and manifests",
            baked.binaries.len(),
            baked.images.len(),
            baked.artifacts.len()
        ));
    }
    lock.kubernetes_binaries = baked.binaries;
    lock.kubernetes_images = baked.images;
    lock.artifacts.extend(baked.artifacts);
    // -- end kubernetes --
    if let Some(l) = &locked {
        lock::check_artifacts(l, &lock, &lock_path.display().to_string())?;
    }

    p.phase("squashfs");
    let mut sq = std::io::Cursor::new(Vec::new());
    squashfs::write(&tree, &mut sq)?;
    let sq = sq.into_inner();
    p.note(&format!("{} MiB", sq.len() >> 20));

    let mut outputs = Vec::new();
    if let Some(pxe_initrd) = &pxe_initrd {
        p.phase("pxe");
        let bundle = crate::pxe::bundle::Bundle {
            name: &spec.name,
            release: &release,
            arch: spec.arch,
            cmdline: &spec.cmdline,
            kernel: &kernel_image,
            initrd: &pxe_initrd.bytes,
            root: &sq,
        };
        outputs.extend(crate::pxe::bundle::write(&opts.out, &bundle)?);
    }
    if spec.formats.iter().any(|f| f.is_disk()) {
        p.phase("disk");
        let disk_key =
            (spec.disk.layout == spec::Layout::Mbr).then(|| crate::mbr::cmdline_key(&spec.name));
        let entry_text = crate::esp::entry(
            &spec.name,
            &release,
            &crate::esp::cmdline(spec.arch, 'a', disk_key.as_deref(), &spec.cmdline),
            'a',
        );
        let esp = crate::esp::plan(loader, spec.arch, entry_text, kernel_image, initrd.bytes);
        outputs.splice(0..0, disk::write_outputs(&spec, &opts.out, esp, &sq)?);
    }
    p.finish_phase();

    write_atomic(&lock_path, lock::render(&lock).as_bytes())?;
    Ok(BuildReport {
        name: spec.name.clone(),
        outputs,
        squashfs_bytes: sq.len() as u64,
        root_files: tree.len(),
        packages: lock.packages.len(),
        seconds: p.elapsed().as_secs_f64(),
    })
}

fn overlay_search(opts: &BuildOptions) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = opts.spec.as_ref().and_then(|s| s.parent()) {
        v.push(dir.join("overlays"));
    }
    v.push(PathBuf::from("overlays"));
    v
}

fn take_file(tree: &crate::tree::Tree, path: &str) -> Result<Vec<u8>> {
    match tree.get(path).map(|e| &e.node) {
        Some(crate::tree::Node::File(d)) => Ok(d.to_vec()),
        _ => bail!("{path} not found in the packages (is the right package listed?)"),
    }
}

/// Writes `data` to a temporary file beside `path` and renames it into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, data).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
