//! The `concil` command: a thin face on the library (argument parsing, progress, output).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand, ValueEnum};
use concil::config::Config;
use concil::digest::Digest;
use concil::image_file::FileReference;
use concil::reference::Reference;
use concil::store::{Platform, Progress, Store};
use concil::trust::key_management;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

mod cli_cache;
mod cli_inspect;

#[derive(Parser)]
#[command(
    name = "concil",
    version,
    about = "Verified, cached, mount-ready squashfs layers from OCI registries"
)]
struct Cli {
    /// Log what happens (-v: info, -vv: debug) on stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image into the cache and print its layers' squashfs paths.
    Pull {
        /// OS/ARCH[/VARIANT]; the host's by default.
        #[arg(long)]
        platform: Option<String>,
        /// Print one JSON object describing the image on stdout.
        #[arg(long)]
        json: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pull without checking content trust.
        #[arg(long)]
        no_verify: bool,
        /// Touch no network: serve the image from the cache (a tag as the last online pull of
        /// it resolved it; trust as that pull established it).
        #[arg(long)]
        offline: bool,
        /// Hold the pulled images while COMMAND runs (no clean-up of any process sharing the
        /// cache removes them meanwhile), then exit with its status.
        #[arg(long, requires = "command")]
        hold: bool,
        /// docker://host[:port]/repo[:tag][@sha256:…] or a short name (alpine), or an image
        /// file: oci:DIR[:TAG|@DIGEST], oci-archive:FILE[:TAG|@DIGEST],
        /// docker-archive:FILE[:REPO:TAG|:@N]; several are pulled one after the other.
        #[arg(required = true)]
        images: Vec<String>,
        /// With --hold: the command to run (after `--`).
        #[arg(last = true, requires = "hold", value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Show what an image reference resolves to (digest, media type, an index's platforms),
    /// its layers and config summary, without downloading any layer.
    Inspect {
        /// OS/ARCH[/VARIANT] of the image manifest to show; the host's by default.
        #[arg(long)]
        platform: Option<String>,
        /// Print the manifest the reference resolves to, byte for byte as served.
        #[arg(long, conflicts_with_all = ["image_config", "json"])]
        raw: bool,
        /// Print the image config blob, byte for byte.
        #[arg(long, conflicts_with = "json")]
        image_config: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Inspect without checking content trust.
        #[arg(long)]
        no_verify: bool,
        /// docker://host[:port]/repo[:tag][@sha256:…], a short name, or an image file (oci:,
        /// oci-archive:, docker-archive:).
        image: String,
    },
    /// Convert a tar, tar.gz or tar.zst file to squashfs and print its diff_id.
    Convert {
        /// zstd compression level.
        #[arg(long, default_value_t = 10)]
        level: i32,
        /// Block size in bytes (a power of two, 4 KiB to 1 MiB).
        #[arg(long, default_value_t = 128 * 1024)]
        block_size: u32,
        /// Compressor threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// How OCI whiteout files are written.
        #[arg(long, value_enum, default_value_t = WhiteoutMode::Keep)]
        whiteouts: WhiteoutMode,
        /// Input tar file, or - for stdin (compression detected from magic bytes).
        input: PathBuf,
        /// Output squashfs file.
        output: PathBuf,
    },
    /// Manage the cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Manage content trust.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Check credentials against a registry, then store them: in the Docker credential helper
    /// Docker's config.json names for it, else in the configuration file's auths (mode 0600).
    Login {
        /// The registry, host[:port] (docker.io for Docker Hub).
        registry: String,
        /// The user name (asked for on a terminal when not given).
        #[arg(short, long)]
        username: Option<String>,
        /// Read the password from stdin (else it is asked for on a terminal, not echoed).
        #[arg(long)]
        password_stdin: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove a registry's stored credentials (from the credential helper and the
    /// configuration file).
    Logout {
        /// The registry, host[:port].
        registry: String,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script (bash: `source <(concil completion bash)`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff; `concil man pull | man -l -`); doc/ holds them all.
    Man {
        /// The subcommand whose page to print (pull, convert, cache, …); none: concil's own.
        page: Option<String>,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Cosign public keys: the `*.pub` files in `cosign/` beside the configuration file.
    Cosign {
        #[command(subcommand)]
        command: CosignCommand,
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CosignCommand {
    /// List the trusted keys.
    List,
    /// Trust a PEM public key (ECDSA P-256/P-384, RSA, Ed25519).
    Import {
        file: PathBuf,
        /// Name of the key (default: the file name without extension).
        name: Option<String>,
    },
    /// Make a key pair: NAME.key (encrypted with $COSIGN_PASSWORD, cosign's format) in the
    /// current directory, and the public key into the trusted keys.
    Generate { name: String },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List the images in the cache (size, what removing each frees, last use) and the total.
    Ls {
        /// Also list every layer with the images that use it.
        #[arg(long)]
        layers: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove images (every platform pulled of each reference, or a manifest digest
    /// sha256:… of at least 12 digits) with what no other image uses; held images stay.
    Rm {
        /// Print what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove entries not used for cache_timeout seconds (or --older-than), then the least
    /// recently used images until the cache fits --max-size (or cache_max_size).
    Clean {
        /// Seconds.
        #[arg(long)]
        older_than: Option<u64>,
        /// Bytes, or a size such as 50G or 500M (powers of 1024).
        #[arg(long)]
        max_size: Option<String>,
        /// Print what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check every entry against its digest or recorded checksum, every link and record;
    /// exit status 24 if anything was wrong.
    Verify {
        /// Remove what is broken (unless held), so that the next pull fetches it again.
        #[arg(long)]
        repair: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration file (else $CONCIL_CONFIG, else ~/.concil/config.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum WhiteoutMode {
    Keep,
    Overlay,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli.command) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            let status = if error.is::<UsageError>() {
                concil::exit_status::USAGE
            } else if let Some(StatusError { status, .. }) = error.downcast_ref() {
                *status
            } else {
                concil::exit_status::of(&*error)
            };
            let mut line = format!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{}", escape_control_characters(&line));
            ExitCode::from(status)
        }
    }
}

/// `text` with every control character (newlines, escape sequences, C1 controls, …) written
/// as a Rust-style escape, so that text from outside (a registry's error message, a file name,
/// a parser's multi-line report) can neither drive the terminal nor add lines: one failure,
/// one `error:` line.
fn escape_control_characters(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        // Bidirectional overrides too: they make a terminal show text in another order.
        let reorders = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || reorders {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Log lines carry outside text (a registry's platform names, errors): escaped like the
    // error line, so no colours (their escape sequences would be escaped too).
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapedStderr)
        .with_ansi(false)
        .init();
}

/// Standard error for log lines: each line's control characters escaped (its final newline
/// kept), so a value from outside can neither drive the terminal nor forge a line.
struct EscapedStderr;

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (line, newline) = match text.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (&*text, ""),
        };
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{}{newline}", escape_control_characters(line))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn run(command: Command) -> Result<u8, BoxError> {
    use concil::exit_status::SUCCESS;
    match command {
        Command::Login {
            registry,
            username,
            password_stdin,
            config,
        } => login(&registry, username, password_stdin, config.as_deref()).map(|()| SUCCESS),
        Command::Logout { registry, config } => {
            let config = Config::load(config.as_deref())?;
            if config.remove_credentials(&registry)? {
                println!("removed the credentials for {registry}");
            } else {
                println!("no credentials stored for {registry}");
            }
            Ok(SUCCESS)
        }
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "concil",
                &mut std::io::stdout(),
            );
            Ok(SUCCESS)
        }
        Command::Man { page } => {
            let wanted = match page {
                Some(sub) => format!("concil-{sub}.1"),
                None => "concil.1".to_owned(),
            };
            let pages = man_pages()?;
            let (_, roff) = pages
                .iter()
                .find(|(name, _)| *name == wanted)
                .ok_or_else(|| format!("no manual page {wanted}"))?;
            std::io::stdout().write_all(roff)?;
            Ok(SUCCESS)
        }
        Command::Pull {
            platform,
            json,
            config,
            no_verify,
            offline,
            hold,
            images,
            command,
        } => pull(
            &images,
            platform.as_deref(),
            json,
            config.as_deref(),
            PullMode { no_verify, offline },
            hold.then_some(command.as_slice()),
        ),
        Command::Inspect {
            platform,
            raw,
            image_config,
            json,
            config,
            no_verify,
            image,
        } => {
            let output = match (raw, image_config, json) {
                (true, _, _) => cli_inspect::Output::Raw,
                (_, true, _) => cli_inspect::Output::ImageConfig,
                (_, _, true) => cli_inspect::Output::Json,
                _ => cli_inspect::Output::Text,
            };
            cli_inspect::inspect(
                &image,
                platform.as_deref(),
                config.as_deref(),
                no_verify,
                output,
            )
        }
        Command::Convert {
            level,
            block_size,
            threads,
            whiteouts,
            input,
            output,
        } => {
            let options = tarsquash::Options {
                image: tarsquash::image::ImageOptions {
                    level,
                    block_size,
                    threads,
                },
                whiteouts: match whiteouts {
                    WhiteoutMode::Keep => tarsquash::Whiteouts::Keep,
                    WhiteoutMode::Overlay => tarsquash::Whiteouts::Overlay,
                },
                ..tarsquash::Options::default()
            };
            convert(&input, &output, &options).map(|()| SUCCESS)
        }
        Command::Trust {
            command: TrustCommand::Cosign { command, config },
        } => cosign_keys(command, config.as_deref()).map(|()| SUCCESS),
        Command::Cache { command } => match command {
            CacheCommand::Ls {
                layers,
                json,
                config,
            } => cli_cache::list(config.as_deref(), layers, json),
            CacheCommand::Rm {
                dry_run,
                config,
                images,
            } => cli_cache::remove(config.as_deref(), &images, dry_run),
            CacheCommand::Clean {
                older_than,
                max_size,
                dry_run,
                config,
            } => cli_cache::clean(config.as_deref(), older_than, max_size.as_deref(), dry_run),
            CacheCommand::Verify {
                repair,
                json,
                config,
            } => cli_cache::verify(config.as_deref(), repair, json),
        },
    }
}

fn cosign_keys(command: CosignCommand, config: Option<&Path>) -> Result<(), BoxError> {
    let config = Config::load(config)?;
    let dir = config
        .cosign_key_dir()
        .ok_or("no configuration directory for cosign keys (no home directory)")?;
    match command {
        CosignCommand::List => {
            for key in key_management::list_keys(&dir)? {
                println!(
                    "{}\t{:?}\t{}",
                    key.name,
                    key.algorithm(),
                    key.path.display()
                );
            }
        }
        CosignCommand::Import { file, name } => {
            let key = key_management::import_key(&dir, &file, name.as_deref())?;
            println!("{}", key.path.display());
        }
        CosignCommand::Generate { name } => {
            let password = std::env::var("COSIGN_PASSWORD")
                .map_err(|_| "set COSIGN_PASSWORD to the password that encrypts the private key")?;
            let private_key = PathBuf::from(format!("{name}.key"));
            let generated =
                key_management::generate_key_pair(&dir, &name, &private_key, password.as_bytes())?;
            println!("private key: {}", generated.private_key_path.display());
            println!("public key:  {}", generated.public_key.path.display());
        }
    }
    Ok(())
}

/// `concil login`: the user name and password from the options, stdin or the terminal.
fn login(
    registry: &str,
    username: Option<String>,
    password_stdin: bool,
    config: Option<&Path>,
) -> Result<(), BoxError> {
    use std::io::{BufRead, Read};
    let config = Config::load(config)?;
    let terminal = std::io::stdin().is_terminal();
    let username = match username {
        Some(username) => username,
        None if terminal && !password_stdin => {
            eprint!("Username: ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
        None => return Err(UsageError("give the user name with -u USER").into()),
    };
    let password = if password_stdin {
        let mut text = String::new();
        std::io::stdin().take(64 * 1024).read_to_string(&mut text)?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else if terminal {
        rpassword::prompt_password("Password: ")?
    } else {
        return Err(UsageError("no terminal to ask for the password: use --password-stdin").into());
    };
    if username.is_empty() || password.is_empty() {
        return Err(UsageError("the user name and the password must not be empty").into());
    }
    let saved = concil::store::login(
        &config,
        registry,
        concil::config::Credentials { username, password },
    )?;
    match saved {
        concil::config::SavedIn::Helper(helper) => {
            println!("login succeeded; credentials for {registry} stored in {helper}")
        }
        concil::config::SavedIn::ConfigFile(path) => println!(
            "login succeeded; credentials for {registry} stored in {}",
            path.display()
        ),
    }
    Ok(())
}

/// An `IMAGE` argument: a registry's image, or an image file.
/// An image as the command line names it: in a registry, or a file.
pub(crate) enum ImageName {
    Registry(Reference),
    File(FileReference),
}

impl ImageName {
    pub(crate) fn parse(text: &str) -> Result<ImageName, concil::reference::ReferenceError> {
        match FileReference::parse(text) {
            Some(file) => Ok(ImageName::File(file)),
            None => Reference::parse(text).map(ImageName::Registry),
        }
    }
}

/// The store a command reads images through (without content trust for `--no-verify`), and
/// the platform it asks for (`--platform`, else the host's).
pub(crate) fn open_store(
    config: Config,
    platform: Option<&str>,
    no_verify: bool,
) -> Result<(Store, Platform), BoxError> {
    let platform = match platform {
        Some(text) => text.parse::<Platform>()?,
        None => Platform::host(),
    };
    let mut store = Store::open(config)?;
    if no_verify {
        store = store.without_verification();
    }
    Ok((store, platform))
}

/// A failure of the command itself with the exit status it ends with.
#[derive(Debug)]
struct StatusError {
    message: String,
    status: u8,
}

impl StatusError {
    fn new(message: String, status: u8) -> StatusError {
        StatusError { message, status }
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

/// A command line that is wrong in a way clap cannot see (exit status 2).
#[derive(Debug)]
struct UsageError(&'static str);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for UsageError {}

/// Why `reference` is pulled without content trust, if it is.
fn unverified_because(
    config: &Config,
    reference: &Reference,
    no_verify: bool,
) -> Option<&'static str> {
    if no_verify {
        return Some("--no-verify");
    }
    let (registry, repository) = (&reference.registry, &reference.repository);
    if config.content_trust_for(registry, repository).is_some() {
        return None;
    }
    Some(
        match config.trust_policy.for_repository(registry, repository) {
            Some(_) => "trust_policy says \"none\" for it",
            None => "disable_content_trust is set",
        },
    )
}

/// The manual pages, from the same definitions as the command line: `concil` and one per
/// subcommand (`concil-pull`, …), as (file name, roff) pairs; doc/ holds them.
fn man_pages() -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut pages = Vec::new();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    pages.push(("concil.1".to_owned(), page));
    for sub in command.get_subcommands() {
        let name = format!("concil-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("concil {}", sub.get_name()));
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

/// How `pull` treats content trust and the network.
#[derive(Clone, Copy)]
struct PullMode {
    no_verify: bool,
    offline: bool,
}

fn pull(
    images: &[String],
    platform: Option<&str>,
    json: bool,
    config: Option<&Path>,
    PullMode { no_verify, offline }: PullMode,
    hold_while: Option<&[String]>,
) -> Result<u8, BoxError> {
    let config = Config::load(config)?;
    let references = images
        .iter()
        .map(|image| ImageName::parse(image))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut store, platform) = open_store(config, platform, no_verify)?;
    if offline {
        store = store.offline();
    }
    if !json && std::io::stderr().is_terminal() {
        store = store.with_progress(Arc::new(Bars::default()));
    }
    // Every image stays held until the command ends: a later image's pull (which may clean a
    // cache over cache_max_size) never removes an earlier one.
    let mut holds = concil::cache::Hold::empty();
    for (image, name) in images.iter().zip(&references) {
        let (pulled, hold) = match name {
            ImageName::Registry(reference) => {
                if let Some(why) = unverified_because(store.config(), reference, no_verify) {
                    eprintln!("warning: {why}: content trust is not checked for {image}");
                }
                store.pull_held(reference, &platform)?
            }
            ImageName::File(file) => store.pull_file_held(file, &platform)?,
        };
        holds.extend(hold);
        let mut stdout = std::io::stdout().lock();
        if json {
            let mut value = serde_json::to_value(&pulled)?;
            if let serde_json::Value::Object(map) = &mut value {
                map.insert("image".into(), image.as_str().into());
            }
            writeln!(stdout, "{value}")?;
        } else {
            for layer in &pulled.layers {
                writeln!(stdout, "{}", layer.path.display())?;
            }
        }
    }
    let Some(command) = hold_while else {
        return Ok(concil::exit_status::SUCCESS);
    };
    std::io::stdout().flush()?;
    let status = run_while_holding(command)?;
    drop(holds);
    Ok(status)
}

/// Runs `command` (the images held meanwhile) and returns the status to exit with: its own,
/// 128 + the signal that killed it, 127 if it cannot be found, 126 if it cannot be run.
fn run_while_holding(command: &[String]) -> Result<u8, BoxError> {
    use std::os::unix::process::ExitStatusExt;
    let (program, arguments) = command
        .split_first()
        .ok_or(UsageError("--hold needs a command after --"))?;
    let status = match std::process::Command::new(program).args(arguments).status() {
        Ok(status) => status,
        Err(error) => {
            let status = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Err(StatusError::new(format!("cannot run {program}: {error}"), status).into());
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(concil::exit_status::FAILURE),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(concil::exit_status::FAILURE),
        (None, None) => concil::exit_status::FAILURE,
    })
}

fn convert(input: &Path, output: &Path, options: &tarsquash::Options) -> Result<(), BoxError> {
    let stdin;
    let file;
    let reader: Box<dyn std::io::Read> = if input == Path::new("-") {
        stdin = std::io::stdin().lock();
        Box::new(stdin)
    } else {
        file = std::fs::File::open(input)
            .map_err(|e| format!("cannot open {}: {e}", input.display()))?;
        Box::new(file)
    };
    let (_, mut tar) = tarsquash::decode::Compression::detect_decoder(reader)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let conversion = tarsquash::convert_to_path(&mut tar, output, options)?;
    println!("{}", conversion.diff_id);
    Ok(())
}

/// One progress bar per layer on a terminal.
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn layer_started(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(short_digest(digest).to_owned());
        bar.set_message("downloading + converting");
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(digest.clone(), bar);
        }
    }

    fn layer_bytes(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.bar(digest) {
            bar.inc(bytes);
        }
    }

    fn layer_retrying(&self, digest: &Digest, retry: u32, budget: u32) {
        if let Some(bar) = self.bar(digest) {
            bar.set_message(format!("retrying ({retry}/{budget})"));
        }
    }

    fn layer_restarted(&self, digest: &Digest) {
        if let Some(bar) = self.bar(digest) {
            bar.set_position(0);
            bar.set_message("starting over");
        }
    }

    fn layer_done(&self, digest: &Digest, cached: bool) {
        let bar = self
            .bars
            .lock()
            .ok()
            .and_then(|bars| bars.get(digest).cloned());
        match bar {
            Some(bar) => bar.finish_with_message("done"),
            None if cached => {
                let _ = self
                    .multi
                    .println(format!("{} cached", short_digest(digest)));
            }
            None => {}
        }
    }
}

impl Bars {
    fn bar(&self, digest: &Digest) -> Option<ProgressBar> {
        self.bars
            .lock()
            .ok()
            .and_then(|bars| bars.get(digest).cloned())
    }
}

fn short_digest(digest: &Digest) -> &str {
    &digest.hex()[..12]
}
