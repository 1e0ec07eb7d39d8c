//! Image references: `docker://host[:port]/path[:tag][@sha256:…]` and the short forms people
//! type (`alpine` → `docker.io/library/alpine:latest`), normalised as Docker does
//! (distribution/reference's `ParseNormalizedNamed`).
//!
//! Parsed by hand rather than with `oci_spec::distribution::Reference` (oci-spec 0.10): that type
//! matches one regular expression and reports a bare "invalid reference format" without saying
//! which part is wrong, accepts sha384/sha512 and upper-case hex digests (concil verifies sha256
//! only), keeps `registry-1.docker.io` as a separate registry, and limits only the repository's
//! length instead of the whole name's.

use std::fmt;

use crate::digest::{is_sha256_hex, Digest, DigestError};

/// The registry name Docker Hub references normalise to.
pub const DOCKER_HUB: &str = "docker.io";
/// Other names of Docker Hub that normalise to [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// Docker Hub's namespace for one-component names (`alpine` → `library/alpine`).
const OFFICIAL_NAMESPACE: &str = "library";
const DEFAULT_TAG: &str = "latest";
/// The only URL scheme a reference may carry.
const SCHEME: &str = "docker";
/// Longest `registry/repository` Docker accepts.
const NAME_MAX_LEN: usize = 255;
const TAG_MAX_LEN: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, as Docker names it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/alpine`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// The digest, when given.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference. Every variant names the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Nothing (or only `docker://`) was given.
    #[error("invalid image reference {input:?}: it names no repository")]
    Empty {
        /// The reference as given.
        input: String,
    },
    /// A `scheme://` prefix other than `docker://` (`oci://`, `https://`).
    #[error("invalid image reference {input:?}: unsupported scheme {scheme:?} (only docker:// is supported)")]
    UnsupportedScheme {
        /// The reference as given.
        input: String,
        /// The scheme before `://`.
        scheme: String,
    },
    /// The first component names a registry (it has `.` or `:`, or is `localhost`) that is
    /// not a valid `host[:port]`.
    #[error("invalid image reference {input:?}: registry {registry:?} is not a valid host[:port]")]
    InvalidRegistry {
        /// The reference as given.
        input: String,
        /// The registry component as given.
        registry: String,
    },
    /// The repository path has upper-case letters; Docker refuses them rather than folding
    /// them.
    #[error("invalid image reference {input:?}: repository {repository:?} must be lowercase")]
    UppercaseRepository {
        /// The reference as given.
        input: String,
        /// The repository path as given, before normalisation.
        repository: String,
    },
    /// A repository path component breaks the distribution spec's grammar (empty, a leading
    /// or trailing separator, a character other than `[a-z0-9._-]`).
    #[error(
        "invalid image reference {input:?}: path component {component:?} must be lowercase letters \
         and digits, separated by '.', '_', '__' or dashes"
    )]
    InvalidPathComponent {
        /// The reference as given.
        input: String,
        /// The first invalid component.
        component: String,
    },
    /// The normalised `registry/repository` is longer than Docker's 255 characters.
    #[error("invalid image reference {input:?}: name is {length} characters long, at most {NAME_MAX_LEN} are allowed")]
    NameTooLong {
        /// The reference as given.
        input: String,
        /// The length of the normalised `registry/repository`.
        length: usize,
    },
    /// The tag breaks the distribution spec's tag grammar or is longer than 128 characters.
    #[error(
        "invalid image reference {input:?}: tag {tag:?} must be 1 to {TAG_MAX_LEN} letters, \
         digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    InvalidTag {
        /// The reference as given.
        input: String,
        /// The tag after the `:`.
        tag: String,
    },
    /// The `@` digest is well-formed but not sha256, the only algorithm concil verifies.
    #[error("invalid image reference {input:?}: unsupported digest algorithm {algorithm:?} (only sha256 is supported)")]
    UnsupportedDigestAlgorithm {
        /// The reference as given.
        input: String,
        /// The digest's algorithm (`sha512`).
        algorithm: String,
    },
    /// The text after `@` is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid image reference {input:?}: digest {digest:?} is not sha256: followed by 64 lowercase hex digits")]
    InvalidDigest {
        /// The reference as given.
        input: String,
        /// The text after the `@`.
        digest: String,
    },
    /// The reference is 64 hex digits: Docker reads that as a local image ID, which a
    /// registry cannot serve, so it is refused rather than taken as a repository name.
    #[error("invalid image reference {input:?}: a 64-digit hex string is an image ID, not a repository name")]
    ImageId {
        /// The reference as given.
        input: String,
    },
}

impl Reference {
    /// Parses and normalises a reference; the same as `str::parse`.
    ///
    /// Accepts an optional `docker://` prefix. The first path component is the registry iff it
    /// contains `.` or `:` or is `localhost`; otherwise the registry is Docker Hub, where
    /// one-component names live in `library/`. The tag defaults to `latest` only when neither
    /// tag nor digest is given.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let error_input = || input.to_owned();
        let text = match input.split_once("://") {
            Some((SCHEME, rest)) => rest,
            Some((scheme, _)) => {
                return Err(ReferenceError::UnsupportedScheme {
                    input: error_input(),
                    scheme: scheme.to_owned(),
                })
            }
            None => input,
        };
        if text.is_empty() {
            return Err(ReferenceError::Empty {
                input: error_input(),
            });
        }
        if is_sha256_hex(text) {
            return Err(ReferenceError::ImageId {
                input: error_input(),
            });
        }

        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name_and_tag, digest)) => (name_and_tag, Some(parse_digest(input, digest)?)),
            None => (text, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to the registry's port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            if !is_valid_tag(tag) {
                return Err(ReferenceError::InvalidTag {
                    input: error_input(),
                    tag: tag.to_owned(),
                });
            }
        }

        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                if !is_valid_registry(first) {
                    return Err(ReferenceError::InvalidRegistry {
                        input: error_input(),
                        registry: first.to_owned(),
                    });
                }
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        let registry = if DOCKER_HUB_ALIASES.contains(&registry) {
            DOCKER_HUB
        } else {
            registry
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository {
                input: error_input(),
                repository: path.to_owned(),
            });
        }
        if let Some(component) = path.split('/').find(|c| !is_valid_path_component(c)) {
            return Err(ReferenceError::InvalidPathComponent {
                input: error_input(),
                component: component.to_owned(),
            });
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path.to_owned()
        };
        let length = registry.len() + 1 + repository.len();
        if length > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                input: error_input(),
                length,
            });
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// Whether the registry is Docker Hub (`docker.io`).
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// What to ask the registry's manifest endpoint for: the digest if present, else the tag
    /// (`latest` if a hand-built reference has neither).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_ref()
            .map(Digest::as_str)
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

/// The host part of a registry name, without its port: `127.0.0.1:5000` → `127.0.0.1`,
/// `[::1]:5000` → `[::1]`, `docker.io` → `docker.io`.
pub fn registry_host(registry: &str) -> &str {
    let port_start = match registry.rfind(']') {
        // IPv6: a port can only follow the closing bracket.
        Some(bracket) => registry[bracket..].find(':').map(|colon| bracket + colon),
        None => registry.find(':'),
    };
    port_start.map_or(registry, |colon| &registry[..colon])
}

fn parse_digest(input: &str, digest: &str) -> Result<Digest, ReferenceError> {
    Digest::parse(digest).map_err(|error| match error {
        DigestError::UnsupportedAlgorithm { algorithm, .. } => {
            ReferenceError::UnsupportedDigestAlgorithm {
                input: input.to_owned(),
                algorithm,
            }
        }
        _ => ReferenceError::InvalidDigest {
            input: input.to_owned(),
            digest: digest.to_owned(),
        },
    })
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`: the distribution spec's tag grammar.
pub(crate) fn is_valid_tag(tag: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes().split_first() {
        Some((&first, rest)) => {
            tag.len() <= TAG_MAX_LEN
                && is_word(first)
                && rest.iter().all(|&b| is_word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`: alphanumeric runs joined by one separator each.
pub(crate) fn is_valid_path_component(component: &str) -> bool {
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut runs = component.split(is_alnum);
    // Leading and trailing pieces are empty iff the component starts and ends alphanumerically.
    let (Some(""), Some("")) = (runs.next(), runs.next_back()) else {
        return false;
    };
    runs.all(|separator| {
        matches!(separator, "" | "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
    })
}

/// `host[:port]` where host is a DNS name (`[a-zA-Z0-9]` labels with inner dashes, joined by
/// `.`) or a bracketed IPv6 address, and the port is decimal digits.
fn is_valid_registry(registry: &str) -> bool {
    let host = registry_host(registry);
    let port_ok = match &registry[host.len()..] {
        "" => true,
        port => port
            .strip_prefix(':')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
        None => host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }),
    };
    port_ok && host_ok
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

/// The canonical form `host/repo[:tag][@digest]`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parsed(input: &str) -> (String, String, Option<String>, Option<Digest>) {
        let reference = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        (
            reference.registry,
            reference.repository,
            reference.tag,
            reference.digest,
        )
    }

    fn canonical(input: &str) -> String {
        Reference::parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn short_forms_normalise_like_docker() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("user/app:1", "docker.io/user/app:1"),
            ("docker.io/alpine", "docker.io/library/alpine:latest"),
            ("index.docker.io/user/app", "docker.io/user/app:latest"),
            (
                "registry-1.docker.io/library/busybox:musl",
                "docker.io/library/busybox:musl",
            ),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
            ("[::1]:5000/a:t", "[::1]:5000/a:t"),
            ("quay.io/a/b/c/d", "quay.io/a/b/c/d:latest"),
            // Without '.', ':' or "localhost" the first component is a namespace on Docker Hub.
            ("myhost/app", "docker.io/myhost/app:latest"),
            // No '/': the colon starts a tag even if the name looks like host:port.
            ("test.com:5000", "docker.io/library/test.com:5000"),
            (
                "a.b-c/e---f.g_h__i:Tag_1.x-y",
                "a.b-c/e---f.g_h__i:Tag_1.x-y",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input), expected, "{input}");
        }
    }

    #[test]
    fn docker_scheme_is_stripped() {
        assert_eq!(
            parsed("docker://docker.io/library/alpine:latest"),
            (
                "docker.io".into(),
                "library/alpine".into(),
                Some("latest".into()),
                None
            )
        );
        assert_eq!(
            canonical("docker://127.0.0.1:5000/x"),
            "127.0.0.1:5000/x:latest"
        );
    }

    #[test]
    fn digest_without_tag_has_no_default_tag() {
        let input = format!("ghcr.io/o/r@sha256:{HEX}");
        let reference = Reference::parse(&input).unwrap();
        assert_eq!(reference.registry, "ghcr.io");
        assert_eq!(reference.repository, "o/r");
        assert_eq!(reference.tag, None);
        assert_eq!(
            reference.digest.as_ref().map(Digest::as_str),
            Some(&*format!("sha256:{HEX}"))
        );
        assert_eq!(reference.manifest_reference(), format!("sha256:{HEX}"));
        assert_eq!(reference.to_string(), input);
    }

    #[test]
    fn tag_and_digest_are_both_kept_and_digest_wins() {
        let input = format!("docker://localhost:5000/a/b:v1@sha256:{HEX}");
        let reference = Reference::parse(&input).unwrap();
        assert_eq!(reference.tag.as_deref(), Some("v1"));
        assert_eq!(reference.manifest_reference(), format!("sha256:{HEX}"));
        assert_eq!(
            reference.to_string(),
            format!("localhost:5000/a/b:v1@sha256:{HEX}")
        );
    }

    #[test]
    fn manifest_reference_is_tag_without_digest() {
        assert_eq!(
            Reference::parse("alpine:edge")
                .unwrap()
                .manifest_reference(),
            "edge"
        );
        assert_eq!(
            Reference::parse("alpine").unwrap().manifest_reference(),
            "latest"
        );
    }

    #[test]
    fn docker_hub_detection() {
        assert!(Reference::parse("alpine").unwrap().is_docker_hub());
        assert!(Reference::parse("index.docker.io/a/b")
            .unwrap()
            .is_docker_hub());
        assert!(!Reference::parse("ghcr.io/a/b").unwrap().is_docker_hub());
        assert!(!Reference::parse("localhost/a").unwrap().is_docker_hub());
    }

    #[test]
    fn display_round_trips() {
        for input in ["docker.io/library/alpine:latest", "127.0.0.1:5000/a/b:t"] {
            let reference = Reference::parse(input).unwrap();
            assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
        }
    }

    #[test]
    fn registry_host_drops_the_port() {
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1");
        assert_eq!(registry_host("docker.io"), "docker.io");
        assert_eq!(registry_host("[::1]:5000"), "[::1]");
        assert_eq!(registry_host("[::1]"), "[::1]");
    }

    fn error(input: &str) -> ReferenceError {
        match Reference::parse(input) {
            Ok(reference) => panic!("{input} parsed as {reference}"),
            Err(error) => error,
        }
    }

    #[test]
    fn invalid_references_say_what_is_wrong() {
        let input = |s: &str| s.to_owned();
        assert_eq!(error(""), ReferenceError::Empty { input: input("") });
        assert_eq!(
            error("docker://"),
            ReferenceError::Empty {
                input: input("docker://")
            }
        );
        assert_eq!(
            error("https://ghcr.io/a"),
            ReferenceError::UnsupportedScheme {
                input: input("https://ghcr.io/a"),
                scheme: input("https")
            }
        );
        assert_eq!(
            error("Alpine"),
            ReferenceError::UppercaseRepository {
                input: input("Alpine"),
                repository: input("Alpine")
            }
        );
        assert_eq!(
            error("ghcr.io/Org/app"),
            ReferenceError::UppercaseRepository {
                input: input("ghcr.io/Org/app"),
                repository: input("Org/app")
            }
        );
        for (bad, component) in [
            ("a//b", ""),
            ("ghcr.io/", ""),
            ("-a", "-a"),
            ("a_", "a_"),
            ("x/a..b", "a..b"),
            ("x/a___b", "a___b"),
            ("x/a-_b", "a-_b"),
            ("x/a b", "a b"),
            ("x/ä", "ä"),
        ] {
            assert_eq!(
                error(bad),
                ReferenceError::InvalidPathComponent {
                    input: input(bad),
                    component: input(component)
                },
                "{bad}"
            );
        }
        for (bad, registry) in [
            ("a..b/c", "a..b"),
            ("host:port/c", "host:port"),
            ("-x.io/c", "-x.io"),
            ("x.io:/c", "x.io:"),
        ] {
            assert_eq!(
                error(bad),
                ReferenceError::InvalidRegistry {
                    input: input(bad),
                    registry: input(registry)
                },
                "{bad}"
            );
        }
        let long_tag = "t".repeat(129);
        for (bad, tag) in [
            ("a:", ""),
            ("a:.x", ".x"),
            ("a:-x", "-x"),
            ("a:x+y", "x+y"),
            (&*format!("a:{long_tag}"), &*long_tag),
        ] {
            assert_eq!(
                error(bad),
                ReferenceError::InvalidTag {
                    input: input(bad),
                    tag: input(tag)
                },
                "{bad}"
            );
        }
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn name_length_counts_registry_and_repository() {
        // docker.io/library/ is 18 characters: 237 more make exactly 255.
        assert!(Reference::parse(&"a".repeat(237)).is_ok());
        let too_long = "a".repeat(238);
        assert_eq!(
            error(&too_long),
            ReferenceError::NameTooLong {
                input: too_long.clone(),
                length: 256
            }
        );
    }

    #[test]
    fn digests_must_be_lowercase_sha256() {
        let sha512 = format!("a@sha512:{HEX}{HEX}");
        assert_eq!(
            error(&sha512),
            ReferenceError::UnsupportedDigestAlgorithm {
                input: sha512.clone(),
                algorithm: "sha512".into()
            }
        );
        assert!(error(&sha512)
            .to_string()
            .contains("unsupported digest algorithm"));
        for digest in [
            format!("sha256:{}", HEX.to_uppercase()),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            "sha256".to_owned(),
            format!("1sha:{HEX}"),
            format!("sha256:{HEX}@x"),
        ] {
            let bad = format!("a@{digest}");
            assert_eq!(
                error(&bad),
                ReferenceError::InvalidDigest {
                    input: bad.clone(),
                    digest
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn bare_hex_is_an_image_id() {
        assert_eq!(error(HEX), ReferenceError::ImageId { input: HEX.into() });
    }

    #[test]
    fn errors_name_the_input() {
        let message = error("ghcr.io/a/B:1").to_string();
        assert!(message.contains("\"ghcr.io/a/B:1\""), "{message}");
        assert!(message.contains("lowercase"), "{message}");
    }
}
