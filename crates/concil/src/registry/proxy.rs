//! Which proxy a request goes through, by curl's rules (what users' `HTTPS_PROXY` settings
//! already mean to every other tool): `https_proxy` for `https://` URLs, `http_proxy` for
//! `http://` URLs, `all_proxy` for either when its own is unset, `no_proxy` for hosts that go
//! direct; the lower-case name wins over the upper-case one. `ureq` reads one proxy for
//! every scheme (`ALL_PROXY`, then `HTTPS_PROXY`, then `HTTP_PROXY`), which would send a
//! plain-HTTP registry through the HTTPS proxy; so the names are read here, and `ureq` only
//! gets the proxy chosen for each scheme.
//!
//! `ureq` reaches every target through an HTTP proxy with `CONNECT`, plain-HTTP registries
//! too: the proxy must allow `CONNECT` to the registry's port.

use super::RegistryError;

/// The proxy of one URL scheme.
pub(super) struct ProxySetting {
    pub(super) proxy: ureq::Proxy,
    /// `scheme://host:port` of the proxy, for messages: never its credentials.
    pub(super) shown: String,
}

/// The proxies for `https://` and for `http://` URLs.
pub(super) struct Proxies {
    pub(super) https: Option<ProxySetting>,
    pub(super) http: Option<ProxySetting>,
}

/// The proxies the environment (`var`) names.
pub(super) fn from_environment(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Proxies, RegistryError> {
    let first = |names: [&'static str; 2]| {
        names.into_iter().find_map(|name| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (name, v))
        })
    };
    let no_proxy = first(["no_proxy", "NO_PROXY"]).map(|(_, v)| v);
    let all = ["all_proxy", "ALL_PROXY"];
    let https = first(["https_proxy", "HTTPS_PROXY"]).or_else(|| first(all));
    let http = first(["http_proxy", "HTTP_PROXY"]).or_else(|| first(all));
    let setting = |found: Option<(&str, String)>| {
        found
            .map(|(name, value)| parse(name, &value, no_proxy.as_deref()))
            .transpose()
    };
    Ok(Proxies {
        https: setting(https)?,
        http: setting(http)?,
    })
}

/// One proxy variable's value: `[http://][user:password@]host[:port]`.
fn parse(
    variable: &str,
    value: &str,
    no_proxy: Option<&str>,
) -> Result<ProxySetting, RegistryError> {
    let invalid = |reason: &'static str| RegistryError::InvalidProxy {
        variable: variable.to_owned(),
        reason,
    };
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    // The error never quotes the value: it may carry the proxy's password.
    let url = url::Url::parse(&with_scheme).map_err(|_| invalid("not a URL"))?;
    let protocol = match url.scheme() {
        "http" => ureq::ProxyProtocol::Http,
        "https" => ureq::ProxyProtocol::Https,
        _ => return Err(invalid("only http:// and https:// proxies are supported")),
    };
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut builder = ureq::Proxy::builder(protocol).host(host).port(port);
    if !url.username().is_empty() {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| invalid("credentials are not UTF-8 once percent-decoded"))
        };
        builder = builder.username(&decode(url.username())?);
        if let Some(password) = url.password() {
            builder = builder.password(&decode(password)?);
        }
    }
    for entry in no_proxy.unwrap_or_default().split(',') {
        let entry = entry.trim();
        if !entry.is_empty() {
            builder = builder.no_proxy(entry);
        }
    }
    let proxy = builder.build().map_err(|_| invalid("not a usable proxy"))?;
    Ok(ProxySetting {
        proxy,
        shown: format!("{}://{host}:{port}", url.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Proxies {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        from_environment(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap()
    }

    fn shown(setting: &Option<ProxySetting>) -> Option<&str> {
        setting.as_ref().map(|s| s.shown.as_str())
    }

    #[test]
    fn each_scheme_has_its_own_variable_and_all_proxy_is_the_fallback() {
        let p = proxies(&[("HTTPS_PROXY", "http://s:3128"), ("ALL_PROXY", "a:8080")]);
        assert_eq!(shown(&p.https), Some("http://s:3128"));
        assert_eq!(shown(&p.http), Some("http://a:8080"));
        let p = proxies(&[("HTTPS_PROXY", "http://s:3128")]);
        assert_eq!(shown(&p.http), None);
        let p = proxies(&[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:2"),
        ]);
        assert_eq!(shown(&p.http), Some("http://lower:1"));
        assert_eq!(shown(&p.https), None);
    }

    #[test]
    fn credentials_are_kept_but_never_shown() {
        let p = proxies(&[("https_proxy", "http://user:s%40cret@proxy.example:3128")]);
        let setting = p.https.unwrap();
        assert_eq!(setting.shown, "http://proxy.example:3128");
        assert_eq!(setting.proxy.username(), Some("user"));
        assert_eq!(setting.proxy.password(), Some("s@cret"));
    }

    #[test]
    fn a_bad_value_is_named_by_variable_not_quoted() {
        let error = from_environment(|name| {
            (name == "HTTPS_PROXY").then(|| "ftp://user:hunter2@x:1".to_owned())
        })
        .err()
        .unwrap();
        let text = error.to_string();
        assert!(text.contains("HTTPS_PROXY"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
