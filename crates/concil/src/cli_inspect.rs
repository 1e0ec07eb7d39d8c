//! `concil inspect` (part of the binary): what an image reference resolves to, its platforms,
//! layers and config summary, without downloading a layer.

use std::io::Write;
use std::path::Path;

use concil::config::Config;
use concil::exit_status;
use concil::store::Inspection;
use serde_json::{json, Value};

use crate::{open_store, BoxError, ImageName};

/// What `inspect` prints.
#[derive(Clone, Copy)]
pub enum Output {
    /// A summary for people.
    Text,
    /// The summary as one JSON object.
    Json,
    /// The manifest the reference resolved to, byte for byte.
    Raw,
    /// The image config, byte for byte.
    ImageConfig,
}

pub fn inspect(
    image: &str,
    platform: Option<&str>,
    config: Option<&Path>,
    no_verify: bool,
    output: Output,
) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let name = ImageName::parse(image)?;
    let (store, platform) = open_store(config, platform, no_verify)?;
    let inspection = match &name {
        ImageName::Registry(reference) => store.inspect(reference, &platform)?,
        ImageName::File(file) => store.inspect_file(file, &platform)?,
    };
    let mut stdout = std::io::stdout().lock();
    match output {
        Output::Raw => stdout.write_all(&inspection.raw)?,
        Output::ImageConfig => stdout.write_all(&inspection.config)?,
        Output::Json => writeln!(stdout, "{}", summary(image, &inspection))?,
        Output::Text => print_text(&mut stdout, &summary(image, &inspection))?,
    }
    Ok(exit_status::SUCCESS)
}

/// The summary as JSON: digests and media types, platforms, layers, and the config's
/// `created`, platform, entrypoint, cmd, env and labels.
fn summary(image: &str, inspection: &Inspection) -> Value {
    let config: Value = serde_json::from_slice(&inspection.config).unwrap_or(Value::Null);
    let settings = &config["config"];
    let resolved = &inspection.manifest;
    let descriptors = resolved.manifest.layers();
    let diff_ids = config["rootfs"]["diff_ids"].as_array();
    let layers: Vec<Value> = descriptors
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            json!({
                "digest": layer.digest().to_string(),
                "size": layer.size(),
                "media_type": layer.media_type().to_string(),
                "diff_id": diff_ids.and_then(|ids| ids.get(index)).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let platform = match config["variant"].as_str() {
        Some(variant) => format!(
            "{}/{}/{variant}",
            config["os"].as_str().unwrap_or_default(),
            config["architecture"].as_str().unwrap_or_default()
        ),
        None => format!(
            "{}/{}",
            config["os"].as_str().unwrap_or_default(),
            config["architecture"].as_str().unwrap_or_default()
        ),
    };
    json!({
        "image": image,
        "digest": resolved.resolved_digest,
        "media_type": inspection.media_type,
        "verified": resolved.verified,
        "platforms": inspection.platforms.iter()
            .map(|(platform, digest)| json!({"platform": platform, "digest": digest}))
            .collect::<Vec<_>>(),
        "manifest_digest": resolved.digest,
        "manifest_media_type": resolved.media_type,
        "config_digest": resolved.manifest.config().digest().to_string(),
        "platform": platform,
        "created": config["created"],
        "entrypoint": settings["Entrypoint"],
        "cmd": settings["Cmd"],
        "env": settings["Env"],
        "labels": settings["Labels"],
        "layers": layers,
    })
}

fn print_text(out: &mut impl Write, summary: &Value) -> Result<(), BoxError> {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    writeln!(out, "image:      {}", text(&summary["image"]))?;
    writeln!(
        out,
        "digest:     {} ({})",
        text(&summary["digest"]),
        text(&summary["media_type"])
    )?;
    writeln!(out, "verified:   {}", text(&summary["verified"]))?;
    for platform in summary["platforms"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "platform:   {} {}",
            text(&platform["platform"]),
            text(&platform["digest"])
        )?;
    }
    writeln!(
        out,
        "manifest:   {} ({}) for {}",
        text(&summary["manifest_digest"]),
        text(&summary["manifest_media_type"]),
        text(&summary["platform"])
    )?;
    writeln!(out, "config:     {}", text(&summary["config_digest"]))?;
    for key in ["created", "entrypoint", "cmd"] {
        writeln!(out, "{:<11} {}", format!("{key}:"), text(&summary[key]))?;
    }
    for variable in summary["env"].as_array().into_iter().flatten() {
        writeln!(out, "env:        {}", text(variable))?;
    }
    for (name, value) in summary["labels"].as_object().into_iter().flatten() {
        writeln!(out, "label:      {name}={}", text(value))?;
    }
    for layer in summary["layers"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "layer:      {} {} bytes {} diff_id {}",
            text(&layer["digest"]),
            text(&layer["size"]),
            text(&layer["media_type"]),
            text(&layer["diff_id"])
        )?;
    }
    Ok(())
}
