//! Services as data: what to run, when it is ready, how to restart and stop it, and the
//! start order derived from the dependencies.
//!
//! Owns `ServiceSpec`, its validation and the topological order. It runs nothing.

use std::path::PathBuf;
use std::time::Duration;

/// Where service logs go: `<LOG_DIR>/<service>.log`.
pub const LOG_DIR: &str = "/var/log/kiln";

/// Default time between the stop signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors in a set of service specs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("service name {0:?} is not [a-z0-9._-]+")]
    BadName(String),
    #[error("service {0} has an empty command")]
    EmptyCommand(String),
    #[error("service {0} is declared twice")]
    Duplicate(String),
    #[error("service {service} depends on unknown service {dependency}")]
    UnknownDependency { service: String, dependency: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// When a started service counts as ready (and its dependents may start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// As soon as the process is spawned.
    None,
    /// A Unix stream socket at this path accepts a connection.
    UnixSocket(PathBuf),
    /// 127.0.0.1:port accepts a TCP connection.
    TcpPort(u16),
    /// This path exists.
    File(PathBuf),
}

/// Whether an exited service is started again (after a backoff delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    /// Only after a non-zero exit code or a death by signal.
    OnFailure,
    Never,
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    /// Program and arguments; the program is looked up in PATH when it has no slash.
    pub command: Vec<String>,
    /// Added to a clean environment that only holds a default PATH.
    pub env: Vec<(String, String)>,
    /// Services that must be ready (or have exited successfully) before this one starts.
    pub after: Vec<String>,
    pub ready: Readiness,
    pub restart: RestartPolicy,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    /// stdout and stderr, appended, with size rotation.
    pub log: PathBuf,
    /// Lines `@kiln-event {…}` on its output become events (`events::from_child`).
    pub events: bool,
}

impl ServiceSpec {
    /// A spec with defaults: no dependencies, ready when spawned, restart always, SIGTERM
    /// with a 10 s timeout, logs in `LOG_DIR/<name>.log`.
    pub fn new(name: &str, command: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            after: Vec::new(),
            ready: Readiness::None,
            restart: RestartPolicy::Always,
            stop_signal: libc::SIGTERM,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            log: PathBuf::from(LOG_DIR).join(format!("{name}.log")),
            events: false,
        }
    }
}

/// containerd with the image's config; ready when its socket accepts a connection.
pub fn containerd() -> ServiceSpec {
    let mut spec = ServiceSpec::new(
        "containerd",
        &[
            "/usr/bin/containerd",
            "--config",
            "/etc/containerd/config.toml",
        ],
    );
    spec.ready = Readiness::UnixSocket("/run/containerd/containerd.sock".into());
    spec
}

/// Marker the image import writes when done; its readiness check.
pub const IMAGES_IMPORTED: &str = "/run/kiln/images-imported";

/// One-shot: imports the OCI archives baked under /usr/share/kiln/images into containerd's
/// `k8s.io` namespace (offline; importing an image twice is a no-op), after containerd.
pub fn image_import() -> ServiceSpec {
    let script = format!(
        "set -e; for f in /usr/share/kiln/images/*.tar; do [ -e \"$f\" ] || continue; \
         echo \"importing $f\"; /usr/bin/ctr -n k8s.io images import \"$f\"; done; : > {IMAGES_IMPORTED}"
    );
    let mut spec = ServiceSpec::new("image-import", &["/bin/sh", "-c", &script]);
    spec.after = vec!["containerd".into()];
    spec.ready = Readiness::File(IMAGES_IMPORTED.into());
    spec.restart = RestartPolicy::OnFailure;
    spec
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Validates `specs` and returns, per service, the indices of its dependencies, and a
/// start order in which every service comes after its dependencies (declaration order
/// is kept where the dependencies allow).
pub fn plan(specs: &[ServiceSpec]) -> Result<(Vec<Vec<usize>>, Vec<usize>), SpecError> {
    let index = |name: &str| specs.iter().position(|s| s.name == name);
    let mut deps = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        if !valid_name(&spec.name) {
            return Err(SpecError::BadName(spec.name.clone()));
        }
        if spec.command.first().is_none_or(|p| p.is_empty()) {
            return Err(SpecError::EmptyCommand(spec.name.clone()));
        }
        if index(&spec.name) != Some(i) {
            return Err(SpecError::Duplicate(spec.name.clone()));
        }
        let mut mine = Vec::new();
        for dep in &spec.after {
            let d = index(dep).ok_or_else(|| SpecError::UnknownDependency {
                service: spec.name.clone(),
                dependency: dep.clone(),
            })?;
            if !mine.contains(&d) {
                mine.push(d);
            }
        }
        deps.push(mine);
    }
    let order = topo_order(specs, &deps)?;
    Ok((deps, order))
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    Visiting,
    Done,
}

/// Kahn's algorithm, always taking the first declared service whose dependencies are
/// placed; when it gets stuck, a depth-first search names the cycle.
fn topo_order(specs: &[ServiceSpec], deps: &[Vec<usize>]) -> Result<Vec<usize>, SpecError> {
    let mut placed = vec![false; specs.len()];
    let mut order = Vec::with_capacity(specs.len());
    while order.len() < specs.len() {
        let next = (0..specs.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        let Some(i) = next else {
            break;
        };
        placed[i] = true;
        order.push(i);
    }
    if order.len() == specs.len() {
        return Ok(order);
    }
    let mut marks = vec![Mark::New; specs.len()];
    let mut path = Vec::new();
    let mut post = Vec::new();
    for root in (0..specs.len()).filter(|&i| !placed[i]) {
        if let Err(cycle) = visit(root, deps, &mut marks, &mut path, &mut post) {
            return Err(SpecError::Cycle(
                cycle.iter().map(|&i| specs[i].name.clone()).collect(),
            ));
        }
    }
    // Unreachable: services left unplaced always include a cycle.
    Err(SpecError::Cycle(Vec::new()))
}

/// Depth-first post-order; on a cycle returns its members, first one repeated at the end.
fn visit(
    node: usize,
    deps: &[Vec<usize>],
    marks: &mut [Mark],
    path: &mut Vec<usize>,
    order: &mut Vec<usize>,
) -> Result<(), Vec<usize>> {
    match marks[node] {
        Mark::Done => return Ok(()),
        Mark::Visiting => {
            let start = path.iter().position(|&n| n == node).unwrap_or(0);
            let mut cycle = path[start..].to_vec();
            cycle.push(node);
            return Err(cycle);
        }
        Mark::New => {}
    }
    marks[node] = Mark::Visiting;
    path.push(node);
    for &dep in &deps[node] {
        visit(dep, deps, marks, path, order)?;
    }
    path.pop();
    marks[node] = Mark::Done;
    order.push(node);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, after: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec::new(name, &["/bin/true"]);
        s.after = after.iter().map(|s| s.to_string()).collect();
        s
    }

    fn names(specs: &[ServiceSpec], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| specs[i].name.clone()).collect()
    }

    #[test]
    fn orders_dependencies_first() {
        let cases: Vec<(Vec<ServiceSpec>, Vec<&str>)> = vec![
            (vec![spec("a", &[])], vec!["a"]),
            (vec![spec("b", &["a"]), spec("a", &[])], vec!["a", "b"]),
            (
                vec![
                    spec("kubelet", &["containerd", "etcd"]),
                    spec("etcd", &[]),
                    spec("containerd", &[]),
                ],
                vec!["etcd", "containerd", "kubelet"],
            ),
            (
                vec![spec("c", &["b", "b"]), spec("b", &["a"]), spec("a", &[])],
                vec!["a", "b", "c"],
            ),
        ];
        for (specs, want) in cases {
            let (_, order) = plan(&specs).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(names(&specs, &order), want);
        }
    }

    #[test]
    fn rejects_bad_sets_with_the_exact_error() {
        let mut empty = spec("x", &[]);
        empty.command.clear();
        let cases: Vec<(Vec<ServiceSpec>, SpecError)> = vec![
            (
                vec![spec("a", &["b"]), spec("b", &["a"])],
                SpecError::Cycle(vec!["a".into(), "b".into(), "a".into()]),
            ),
            (
                vec![spec("a", &["a"])],
                SpecError::Cycle(vec!["a".into(), "a".into()]),
            ),
            (
                vec![spec("z", &["b"]), spec("b", &["c"]), spec("c", &["b"])],
                SpecError::Cycle(vec!["b".into(), "c".into(), "b".into()]),
            ),
            (
                vec![spec("a", &["ghost"])],
                SpecError::UnknownDependency {
                    service: "a".into(),
                    dependency: "ghost".into(),
                },
            ),
            (
                vec![spec("a", &[]), spec("a", &[])],
                SpecError::Duplicate("a".into()),
            ),
            (vec![spec("../x", &[])], SpecError::BadName("../x".into())),
            (vec![spec("", &[])], SpecError::BadName(String::new())),
            (vec![empty], SpecError::EmptyCommand("x".into())),
        ];
        for (specs, want) in cases {
            assert_eq!(plan(&specs), Err(want));
        }
    }

    #[test]
    fn cycle_message_shows_the_path() {
        let err = SpecError::Cycle(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
    }

    #[test]
    fn containerd_is_ready_on_its_socket() {
        let c = containerd();
        assert_eq!(c.log, PathBuf::from("/var/log/kiln/containerd.log"));
        assert_eq!(c.restart, RestartPolicy::Always);
        assert_eq!(
            c.ready,
            Readiness::UnixSocket("/run/containerd/containerd.sock".into())
        );
        assert_eq!(c.command[0], "/usr/bin/containerd");
    }
}
