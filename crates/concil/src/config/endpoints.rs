//! Where registries and Notary servers live: `remote_servers`, and the defaults for names it
//! does not list.

use std::path::{Path, PathBuf};

use url::Url;

use super::error::{ConfigError, UrlProblem};
use super::file::RemoteServerFile;

pub(super) const DOCKER_HUB_REGISTRY_URL: &str = "https://registry-1.docker.io/";
pub(super) const DOCKER_HUB_NOTARY_URL: &str = "https://notary.docker.io/";
/// Where Notary listens when `remote_servers` does not say.
pub(super) const DEFAULT_NOTARY_PORT: u16 = 4443;

/// A `remote_servers` entry: where a registry name really lives. URLs are origins
/// (`scheme://host[:port]/`), as concil 1.0 used only their scheme and host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteServer {
    /// Where the registry answers (`registry`).
    pub registry: Option<Url>,
    /// Where its Notary server answers (`notary`).
    pub notary: Option<Url>,
    /// Mirrors tried in order before the registry (`mirrors`); never trusted: what they
    /// serve is checked exactly as what the registry serves.
    pub mirrors: Vec<Url>,
    /// Use the mirrors only for references by digest (`mirror_digest_only`), as
    /// containers' `registries.conf` can: a tag is then always resolved by the registry.
    pub mirror_digest_only: bool,
    /// CA certificates (PEM) for this registry only (`cafile`).
    pub cafile: Option<PathBuf>,
    /// A client certificate and its key (PEM) for registries that require one (`client_cert`,
    /// `client_key`: both or neither).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The TLS files for one registry: from its `remote_servers` entry, then its `certs.d`
/// directories (`HOST[:PORT]/*.crt` CAs, `client.cert` + `client.key`), as containers and
/// Docker lay them out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryTls {
    /// CA files trusted for this registry, beside the global `cafile`.
    pub ca_files: Vec<PathBuf>,
    /// Client certificate and key files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Where containers and Docker keep per-registry certificates.
pub const DEFAULT_CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The TLS files of `registry` (`host[:port]`) in the `certs.d` directories `dirs`, after
/// `remote`'s own. A `certs.d/HOST[:PORT]` that is not a directory is ignored, as Docker does.
pub(super) fn registry_tls(
    remote: Option<&RemoteServer>,
    dirs: &[PathBuf],
    registry: &str,
) -> RegistryTls {
    let mut tls = RegistryTls {
        ca_files: remote.and_then(|r| r.cafile.clone()).into_iter().collect(),
        client_cert: remote.and_then(|r| r.client_cert.clone()),
    };
    for dir in dirs {
        let dir = dir.join(registry);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut crts: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
            .collect();
        crts.sort();
        tls.ca_files.extend(crts);
        let (cert, key) = (dir.join("client.cert"), dir.join("client.key"));
        if tls.client_cert.is_none() && cert.is_file() && key.is_file() {
            tls.client_cert = Some((cert, key));
        }
    }
    tls
}

/// Where to reach a registry, and whether the user configured it in `remote_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEndpoint {
    /// The registry's base URL (an origin).
    pub url: Url,
    /// `true` when the URL came from `remote_servers` (then no plain-HTTP fallback is tried).
    pub explicit: bool,
}

/// A `remote_servers` entry with its URLs checked.
pub(super) fn remote_server(
    path: &Path,
    server: &str,
    entry: RemoteServerFile,
) -> Result<RemoteServer, ConfigError> {
    let origin = |field: &'static str, url: &str| {
        server_origin(url).map_err(|problem| ConfigError::InvalidServerUrl {
            path: path.to_owned(),
            server: server.to_owned(),
            field,
            problem,
        })
    };
    let parse =
        |field: &'static str, url: Option<String>| url.map(|url| origin(field, &url)).transpose();
    let mirrors = entry
        .mirrors
        .iter()
        .map(|mirror| origin("mirrors", mirror))
        .collect::<Result<Vec<_>, _>>()?;
    let client_cert = match (entry.client_cert, entry.client_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::InvalidClientCertificate {
                path: path.to_owned(),
                server: server.to_owned(),
            })
        }
    };
    Ok(RemoteServer {
        registry: parse("registry", entry.registry)?,
        notary: parse("notary", entry.notary)?,
        mirrors,
        mirror_digest_only: entry.mirror_digest_only,
        cafile: entry.cafile,
        client_cert,
    })
}

/// A `remote_servers` URL reduced to its origin.
fn server_origin(text: &str) -> Result<Url, UrlProblem> {
    let mut url = Url::parse(text).map_err(UrlProblem::Unparsable)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlProblem::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A URL built from a registry name; fails if the name is not a `host[:port]`.
pub(super) fn parse_builtin_url(text: &str, registry: &str) -> Result<Url, ConfigError> {
    let invalid = || ConfigError::InvalidRegistryName {
        registry: registry.to_owned(),
    };
    let url = Url::parse(text).map_err(|_| invalid())?;
    let is_origin = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty();
    if is_origin {
        Ok(url)
    } else {
        Err(invalid())
    }
}
