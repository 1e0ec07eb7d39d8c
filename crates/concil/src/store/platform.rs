//! Platforms (`linux/amd64`, `linux/arm/v7`) as a pull asks for them and indexes list them.

use std::fmt;

use super::StoreError;

/// An `os/arch[/variant]` platform, normalised as containerd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The operating system, as Go's `GOOS` names it (`linux`, `windows`).
    pub os: String,
    /// The CPU architecture, as Go's `GOARCH` names it (`amd64`, `arm64`, `arm`).
    pub architecture: String,
    /// The CPU variant (`v7` for `arm`), or `None` where the normalisation makes it implicit
    /// (`arm64`'s `v8`, `amd64`'s `v1`).
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running machine (`linux/amd64`, `linux/arm64`, …).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "arm" => "arm",
            other => other,
        };
        Platform::new(std::env::consts::OS, architecture, None)
    }

    /// A platform with its variant normalised: `arm64` ≡ `arm64/v8`, `arm` means `arm/v7`.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let architecture = match architecture {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let variant = match (architecture, variant.filter(|v| !v.is_empty())) {
            ("arm64", None | Some("v8")) => None,
            ("arm", None) => Some("v7".to_owned()),
            ("amd64", Some("v1")) => None,
            (_, variant) => variant.map(str::to_owned),
        };
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant,
        }
    }

    pub(super) fn from_spec(platform: &oci_spec::image::Platform) -> Platform {
        Platform::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Platform, StoreError> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !parts.iter().all(|part| valid(part)) {
            return Err(StoreError::InvalidPlatform {
                text: text.to_owned(),
            });
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(StoreError::InvalidPlatform {
                text: text.to_owned(),
            }),
        }
    }
}
