//! The `concil cache` subcommands (part of the binary): `ls`, `rm`, `clean`, `verify`, as
//! text for people and JSON for scripts. The work is the library's (`concil::cache`).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concil::cache::{Cache, CacheUsage, EvictionReport, ImageRecord, VerifyReport};
use concil::config::Config;
use concil::digest::Digest;
use concil::exit_status;
use concil::reference::Reference;
use indicatif::HumanBytes;
use serde_json::{json, Value};

use crate::{BoxError, StatusError};

/// `concil cache ls [--layers] [--json]`.
pub fn list(config: Option<&Path>, layers: bool, json: bool) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let usage = Cache::open(&config.cache_dir)?.usage()?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", usage_json(&usage, layers))?;
        return Ok(exit_status::SUCCESS);
    }
    writeln!(
        stdout,
        "{:<50} {:<14} {:<19} {:>11} {:>11}  LAST USED",
        "REFERENCE", "PLATFORM", "MANIFEST", "SIZE", "UNIQUE"
    )?;
    for image in &usage.images {
        let record = &image.image.record;
        let mut reference = record.reference.clone();
        if !image.missing.is_empty() {
            reference.push_str(" (incomplete)");
        }
        writeln!(
            stdout,
            "{:<50} {:<14} {:<19} {:>11} {:>11}  {}",
            reference,
            record.platform,
            short(&record.manifest_digest),
            HumanBytes(image.size).to_string(),
            HumanBytes(image.unique_size).to_string(),
            time_text(image.image.last_used),
        )?;
    }
    let unrecorded: Vec<_> = usage
        .layers
        .iter()
        .filter(|layer| layer.images.is_empty())
        .collect();
    if layers {
        writeln!(stdout)?;
        writeln!(
            stdout,
            "{:<19} {:>11}  {:<20}  USED BY",
            "LAYER", "SIZE", "LAST USED"
        )?;
        for layer in &usage.layers {
            let used_by = if layer.images.is_empty() {
                "(no record: concil 1.0 or an interrupted removal)".to_owned()
            } else {
                layer.images.join(", ")
            };
            writeln!(
                stdout,
                "{:<19} {:>11}  {:<20}  {used_by}",
                short(&layer.diff_id),
                HumanBytes(layer.size).to_string(),
                time_text(layer.last_used),
            )?;
        }
    }
    if usage.unrecorded_bytes > 0 {
        writeln!(
            stdout,
            "not recorded: {} layers and manifests or configs, {} (pulled by concil 1.0, or left by an interrupted removal)",
            unrecorded.len(),
            HumanBytes(usage.unrecorded_bytes)
        )?;
    }
    writeln!(
        stdout,
        "total: {} images, {} layers, {}",
        usage.images.len(),
        usage.layers.len(),
        HumanBytes(usage.total_bytes)
    )?;
    Ok(exit_status::SUCCESS)
}

fn usage_json(usage: &CacheUsage, layers: bool) -> Value {
    let images: Vec<Value> = usage
        .images
        .iter()
        .map(|image| {
            let record = &image.image.record;
            json!({
                "reference": record.reference,
                "platform": record.platform,
                "requested_platform": record.requested_platform,
                "resolved_digest": record.resolved_digest,
                "manifest_digest": record.manifest_digest,
                "config_digest": record.config_digest,
                "verified": record.verified,
                "layers": record.layers.iter().map(|layer| &layer.diff_id).collect::<Vec<_>>(),
                "size": image.size,
                "unique_size": image.unique_size,
                "missing": image.missing,
                "pulled_at": time_text(
                    UNIX_EPOCH
                        .checked_add(Duration::from_secs(record.pulled_at))
                        .unwrap_or(UNIX_EPOCH)
                ),
                "last_used": time_text(image.image.last_used),
            })
        })
        .collect();
    let mut value = json!({
        "images": images,
        "unrecorded_bytes": usage.unrecorded_bytes,
        "total_bytes": usage.total_bytes,
    });
    if layers {
        value["layers"] = usage
            .layers
            .iter()
            .map(|layer| {
                json!({
                    "diff_id": layer.diff_id,
                    "blobs": layer.blobs,
                    "size": layer.size,
                    "path": layer.path,
                    "last_used": time_text(layer.last_used),
                    "images": layer.images,
                })
            })
            .collect();
    }
    value
}

/// `concil cache rm IMAGE…`: each IMAGE is a reference (every platform pulled of it) or a
/// manifest digest (`sha256:…`, at least 12 hex digits).
pub fn remove(config: Option<&Path>, images: &[String], dry_run: bool) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let cache = Cache::open(&config.cache_dir)?;
    let selectors = images
        .iter()
        .map(|image| Selector::parse(image))
        .collect::<Result<Vec<_>, _>>()?;
    let records = cache.image_records()?;
    for (selector, image) in selectors.iter().zip(images) {
        if !records
            .images
            .iter()
            .any(|recorded| selector.matches(&recorded.record))
        {
            return Err(StatusError::new(
                format!("no image {image} in the cache {}", cache.root().display()),
                exit_status::NOT_FOUND,
            )
            .into());
        }
    }
    let report = cache.remove_images(
        |record| selectors.iter().any(|selector| selector.matches(record)),
        dry_run,
    )?;
    print_eviction(&report, dry_run)?;
    if !report.in_use.is_empty() {
        return Err(StatusError::new(
            format!("in use, not removed: {}", report.in_use.join(", ")),
            exit_status::FAILURE,
        )
        .into());
    }
    Ok(exit_status::SUCCESS)
}

/// What `cache rm` names an image by.
enum Selector {
    /// A reference, normalised as records keep it.
    Reference(String),
    /// A prefix of a manifest digest (the platform's, or the index's).
    Digest(String),
}

impl Selector {
    fn parse(text: &str) -> Result<Selector, BoxError> {
        if let Some(hex) = text.strip_prefix("sha256:") {
            if hex.len() >= 12 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Ok(Selector::Digest(text.to_ascii_lowercase()));
            }
        }
        Ok(Selector::Reference(Reference::parse(text)?.to_string()))
    }

    fn matches(&self, record: &ImageRecord) -> bool {
        match self {
            Selector::Reference(reference) => record.reference == *reference,
            Selector::Digest(prefix) => [&record.manifest_digest, &record.resolved_digest]
                .iter()
                .any(|digest| digest.as_str().starts_with(prefix.as_str())),
        }
    }
}

/// `concil cache clean [--older-than S] [--max-size SIZE] [--dry-run]`: the age rule, then
/// the size budget (`--max-size`, else `cache_max_size`, if either is given).
pub fn clean(
    config: Option<&Path>,
    older_than: Option<u64>,
    max_size: Option<&str>,
    dry_run: bool,
) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let max_size = match max_size {
        Some(text) => Some(
            concil::config::parse_size(&Value::from(text)).ok_or_else(|| {
                StatusError::new(
                    format!("--max-size {text:?}: expected bytes or a size such as 50G (K, M, G, T: powers of 1024)"),
                    exit_status::USAGE,
                )
            })?,
        ),
        None => config.cache_max_size,
    };
    let older_than = older_than
        .map(Duration::from_secs)
        .unwrap_or(config.cache_timeout);
    let cache = Cache::open(&config.cache_dir)?;
    let report = cache.clean_older_than(older_than, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} files, {} bytes",
        report.removed_files, report.removed_bytes
    );
    if let Some(max_size) = max_size {
        let report = cache.fit(max_size, dry_run)?;
        print_eviction(&report, dry_run)?;
        println!(
            "cache {} (max {})",
            HumanBytes(report.size_after),
            HumanBytes(max_size)
        );
    }
    Ok(exit_status::SUCCESS)
}

fn print_eviction(report: &EvictionReport, dry_run: bool) -> Result<(), BoxError> {
    let mut stdout = std::io::stdout().lock();
    let verb = if dry_run { "would remove" } else { "removed" };
    for removed in &report.removed {
        writeln!(
            stdout,
            "{verb} {} ({})",
            removed.name,
            HumanBytes(removed.freed)
        )?;
    }
    for image in &report.in_use {
        writeln!(stdout, "kept {image}: in use")?;
    }
    writeln!(
        stdout,
        "{verb} {} images, {}",
        report.removed.len(),
        HumanBytes(report.size_before - report.size_after)
    )?;
    Ok(())
}

/// `concil cache verify [--repair] [--json]`: exit status 24 if anything was wrong.
pub fn verify(config: Option<&Path>, repair: bool, json: bool) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let report = Cache::open(&config.cache_dir)?.verify(repair)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_value(&report)?)?;
    } else {
        print_verify(&mut stdout, &report)?;
    }
    Ok(if report.is_clean() {
        exit_status::SUCCESS
    } else {
        exit_status::CACHE_DAMAGED
    })
}

fn print_verify(out: &mut impl Write, report: &VerifyReport) -> Result<(), BoxError> {
    for problem in &report.problems {
        let repaired = if problem.repaired { " (removed)" } else { "" };
        writeln!(
            out,
            "broken: {}: {}{repaired}",
            problem.path.display(),
            problem.kind
        )?;
    }
    let checked = &report.checked;
    let repaired = report.problems.iter().filter(|p| p.repaired).count();
    writeln!(
        out,
        "checked {} manifests, {} configs, {} layers, {} links, {} records ({} read): {} problems, {repaired} repaired",
        checked.manifests,
        checked.configs,
        checked.layers,
        checked.links,
        checked.records,
        HumanBytes(report.bytes_read),
        report.problems.len()
    )?;
    Ok(())
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &Digest) -> String {
    format!("sha256:{}", &digest.hex()[..12])
}

/// UTC, to the second, RFC 3339.
fn time_text(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(i64::try_from(seconds).unwrap_or(0), 0)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
