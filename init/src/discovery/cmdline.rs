//! The kernel command line provider: `kiln.config=<base64>` (inline kiln.toml or
//! user-data) and cloud-init's `ds=nocloud;s=file:///dir/` seeds. HTTP seeds
//! (`ds=nocloud-net;s=http://…/`) were fetched by stage 1, which had the network up
//! (`crate::netboot`); this provider reads what it left in `Env::net_seed_dir`: the
//! files, or "absent" (404: a note, discovery goes on), or the error (broken).

use std::path::{Path, PathBuf};

use crate::config::{self, Sources};

use super::{DiscoveryError, Env, Found, Provider, NOCLOUD};

/// What the command line says about config.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// The last `kiln.config=` value.
    pub inline: Option<String>,
    /// The last `ds=` value.
    pub ds: Option<String>,
}

/// Picks `kiln.config=` and `ds=` from a command line (last one wins, like the kernel).
pub fn parse(cmdline: &str) -> Args {
    let mut args = Args::default();
    for word in crate::cmdline::split(cmdline) {
        if let Some(v) = word.strip_prefix("kiln.config=") {
            args.inline = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("ds=") {
            // GRUB users escape the `;` as `\;`.
            args.ds = Some(v.replace("\\;", ";"));
        }
    }
    args
}

/// A `ds=` value, as far as Kiln understands it.
#[derive(Debug, PartialEq, Eq)]
pub enum Seed {
    /// No seed location: look for volumes (`ds=nocloud`).
    Volumes,
    Dir(PathBuf),
    /// `http://…` (as given; stage 1 fetches it).
    Http(String),
    /// Understood but not read by this version, with the reason.
    Ignored(String),
}

/// Interprets `nocloud[-net];s=<url>` (`seedfrom=` is the long key).
pub fn seed(ds: &str) -> Result<Seed, DiscoveryError> {
    let mut parts = ds.split(';');
    let source = parts.next().unwrap_or_default().to_ascii_lowercase();
    if !matches!(source.as_str(), "nocloud" | "nocloud-net") {
        return Ok(Seed::Ignored(format!("ds={ds}: not a NoCloud datasource")));
    }
    let url = parts.find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        matches!(k, "s" | "seedfrom").then_some(v)
    });
    let Some(url) = url else {
        return Ok(Seed::Volumes);
    };
    if let Some(path) = url
        .strip_prefix("file://")
        .or(url.starts_with('/').then_some(url))
    {
        if path.starts_with('/') {
            return Ok(Seed::Dir(PathBuf::from(path)));
        }
    } else if url.starts_with("http://") {
        return Ok(Seed::Http(url.to_string()));
    } else if url.starts_with("https://") {
        return Ok(Seed::Ignored(format!(
            "ds={ds}: https seeds are not supported (serve seeds over http on the provisioning network)"
        )));
    }
    Err(DiscoveryError::Broken {
        volume: "kernel command line".to_string(),
        reason: format!("seed {url:?} is neither file:///<dir> nor http(s)://"),
    })
}

/// User-data markers cloud-init recognises; anything else inline is kiln.toml.
fn is_user_data(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]);
    let head = text.trim_start().to_ascii_lowercase();
    [
        "#cloud-config",
        "#!",
        "#include",
        "#cloud-boothook",
        "## template:",
        "content-type:",
        "mime-version:",
    ]
    .iter()
    .any(|m| head.starts_with(m))
}

/// Provider for `kiln.config=` (wins) and `ds=nocloud;s=file://…`.
#[derive(Debug, Clone, Copy)]
pub struct Cmdline;

impl Provider for Cmdline {
    fn name(&self) -> &'static str {
        "cmdline"
    }

    fn load(&self, env: &Env, notes: &mut Vec<String>) -> Result<Option<Found>, DiscoveryError> {
        let args = parse(env.cmdline);
        if let Some(value) = &args.inline {
            if let Some(ds) = &args.ds {
                notes.push(format!("ds={ds} ignored: kiln.config is given"));
            }
            let bytes = config::decode_inline(value).map_err(DiscoveryError::Inline)?;
            let mut sources = Sources::default();
            if is_user_data(&bytes) {
                sources.user_data = Some(bytes);
            } else {
                sources.kiln_toml = Some(bytes);
            }
            return Ok(Some(Found::new(sources, "cmdline")));
        }
        let Some(ds) = &args.ds else {
            return Ok(None);
        };
        let dir = match seed(ds)? {
            Seed::Volumes => return Ok(None),
            Seed::Ignored(why) => {
                notes.push(why);
                return Ok(None);
            }
            Seed::Http(url) => return load_http(env, &url, notes),
            Seed::Dir(dir) => dir,
        };
        let origin = format!("nocloud:file://{}", dir.display());
        read_seed(env, &dir, origin)
    }
}

/// The NoCloud files in `dir` (a `file://` seed, or what stage 1 fetched) as `origin`.
fn read_seed(env: &Env, dir: &Path, origin: String) -> Result<Option<Found>, DiscoveryError> {
    let contents = NOCLOUD
        .paths()
        .iter()
        .map(|p| env.files.read(&dir.join(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = NOCLOUD.collect(contents, &origin)?;
    Ok(Some(Found::new(sources, origin)))
}

/// The seed stage 1 fetched from `url` into `env.net_seed_dir`.
fn load_http(
    env: &Env,
    url: &str,
    notes: &mut Vec<String>,
) -> Result<Option<Found>, DiscoveryError> {
    use crate::netboot::SeedStatus;
    let origin = format!("nocloud-net:{url}");
    let broken = |reason: String| DiscoveryError::Broken {
        volume: origin.clone(),
        reason,
    };
    let dir = env.net_seed_dir;
    let source = env.files.read(&dir.join("source"))?;
    let status = env.files.read(&dir.join("status"))?;
    let (Some(source), Some(status)) = (source, status) else {
        return Err(broken(format!(
            "stage 1 did not fetch it (nothing in {})",
            dir.display()
        )));
    };
    if source != url.as_bytes() {
        return Err(broken(format!(
            "stage 1 fetched {} instead",
            String::from_utf8_lossy(&source)
        )));
    }
    match SeedStatus::parse(&String::from_utf8_lossy(&status)) {
        SeedStatus::Found => {}
        SeedStatus::Absent => {
            notes.push(format!(
                "no NoCloud seed at {url} (meta-data: HTTP 404): going on without it"
            ));
            return Ok(None);
        }
        SeedStatus::Error(why) => return Err(broken(why)),
    }
    read_seed(env, dir, origin)
}

/// The last `ds=` value of a command line.
pub fn ds(cmdline: &str) -> Option<String> {
    parse(cmdline).ds
}
