//! The entry point: a tar stream in, a squashfs image and the tar's sha256 out.
//!
//! The `tar` crate frames the stream (header checksums, sizes, GNU long names, old-GNU sparse
//! files); each entry's metadata is read from its recorded header blocks (see
//! [`tar_input`](crate::tar_input)) and put into the [`Tree`]; regular files stream straight
//! into the image writer, so no file content is ever held in memory.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::decode::DecompressError;
use crate::image::{ImageError, ImageOptions, ImageWriter};
use crate::sparse::{PaxSparse, SparseError, SparseMap};
use crate::tar_input::{
    parse_decimal, pax_records, EntryHeaders, InputProbe, PaxRecord, TarInput,
    MAX_ENTRY_HEADER_BYTES,
};
use crate::tree::{EntryPath, Meta, NodeId, NodeKind, Tree, TreeError, Xattr};

/// How OCI whiteout files (`.wh.name`, `.wh..wh..opq`) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// As regular files, as the tar has them (what concil's runtime expects).
    #[default]
    Keep,
    /// In overlayfs form: `.wh.name` becomes a 0:0 character device `name`, `.wh..wh..opq`
    /// becomes `trusted.overlay.opaque=y` on its directory, and other `.wh..wh.*` entries (aufs
    /// bookkeeping) are left out.
    Overlay,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub image: ImageOptions,
    pub whiteouts: Whiteouts,
    pub limits: Limits,
}

/// Bounds on what one layer may cost, checked while it streams: a conversion that would go
/// over one fails as soon as it does ([`Error::TarTooLarge`], [`Error::TooManyEntries`]).
///
/// A hostile layer is cheap to make and expensive to convert: gzip and zstd shrink long runs
/// of zeros a thousandfold, and a tar of empty files takes 512 bytes an entry before
/// compression while each entry costs memory until the image is finished. The defaults are far
/// above what real images hold, so that only such layers meet them; a caller that knows its
/// images sets them lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of uncompressed tar (the stream the diff_id hashes, end-of-archive blocks
    /// and padding included). Default 256 GiB: the largest layers in use (CUDA and model
    /// images) hold tens of GiB, and the image written from a layer is at most about as
    /// large, so the default also bounds the disk one layer can take.
    pub max_tar_bytes: u64,
    /// Most entries in the tar, as the `tar` crate lists them: every file, directory, link,
    /// device and global PAX header; GNU long-name and PAX extended headers belong to the
    /// entry they precede. Default 20 million: the largest layers in use hold a few hundred
    /// thousand to a few million files (a texlive or node_modules tree), and a conversion
    /// holds about 100 bytes an entry until the image is finished (see [`tree`](crate::tree);
    /// measured in BENCHMARKS.md), so 20 million take about 2 GB.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tar_bytes: 256 << 30,
            max_entries: 20_000_000,
        }
    }
}

/// What a conversion produced.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// sha256 of the uncompressed tar stream, as `sha256:<hex>` (the layer's diff_id).
    pub diff_id: String,
    /// Bytes of uncompressed tar read.
    pub tar_size: u64,
    /// Size of the finished image.
    pub image_size: u64,
}

/// Errors of a conversion. Entries are named by their path as the tar lists it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The input stream itself failed (not its content).
    #[error("reading the tar stream failed at byte {offset}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The compressed layer is corrupt or truncated.
    #[error("decompressing the layer failed at tar byte {offset}")]
    Decompress {
        offset: u64,
        #[source]
        source: DecompressError,
    },
    /// The `tar` crate refused the headers of the entry starting at `offset`.
    #[error("invalid tar header at byte {offset} ({})", after(.previous))]
    Header {
        offset: u64,
        /// The last entry read before it.
        previous: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("the tar stream ends inside the headers at byte {offset} ({})", after(.previous))]
    TruncatedHeaders {
        offset: u64,
        previous: Option<String>,
    },
    /// The uncompressed tar went over [`Limits::max_tar_bytes`].
    #[error(
        "the uncompressed tar is larger than the limit of {limit} bytes (max_tar_bytes), \
         exceeded {}",
        exceeded_at(.entry)
    )]
    TarTooLarge {
        limit: u64,
        /// The entry being read when the limit was reached, or the last one read before (none
        /// before the first entry).
        entry: Option<String>,
    },
    /// The tar has more entries than [`Limits::max_entries`].
    #[error(
        "the tar has more entries than the limit of {limit} (max_entries); \
         {entry:?} is one too many"
    )]
    TooManyEntries {
        limit: u64,
        /// The first entry over the limit.
        entry: String,
    },
    #[error("the headers of the tar entry at byte {offset} take more than {limit} bytes")]
    HeadersTooLarge { offset: u64, limit: u64 },
    #[error("the tar stream ends inside the data of {entry:?} ({got} of {expected} bytes)")]
    Truncated {
        entry: String,
        expected: u64,
        got: u64,
    },
    /// A header field the `tar` crate could not parse (its message names the field).
    #[error("tar entry {entry:?}")]
    Tar {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("tar entry {entry:?}: invalid PAX header: {reason}")]
    Pax { entry: String, reason: &'static str },
    #[error("tar entry {entry:?}: invalid sparse map: {reason}")]
    Sparse { entry: String, reason: &'static str },
    #[error("tar entry {entry:?} has the unsupported type {:?}", char::from(*.type_flag))]
    UnsupportedType { entry: String, type_flag: u8 },
    #[error("tar entry {entry:?}: {field} {value} does not fit in 32 bits")]
    IdTooLarge {
        entry: String,
        field: &'static str,
        value: u64,
    },
    #[error(
        "tar entry {entry:?}: device {major}:{minor} is beyond Linux's 12-bit major, 20-bit minor"
    )]
    DeviceTooLarge {
        entry: String,
        major: u64,
        minor: u64,
    },
    #[error("tar entry {entry:?}: extended attribute {name:?}: {reason}")]
    Xattr {
        entry: String,
        name: String,
        reason: &'static str,
    },
    #[error("tar entry {entry:?}: {reason}")]
    InvalidPath { entry: String, reason: &'static str },
    #[error("tar entry {entry:?}: link target {reason}")]
    InvalidLinkTarget { entry: String, reason: &'static str },
    #[error("tar entry {entry:?} leads out of the root")]
    PathEscapesRoot { entry: String },
    #[error("tar entry {entry:?} is below {parent:?}, which is not a directory")]
    NotADirectory { entry: String, parent: String },
    #[error("tar entry {entry:?} names the root, but is not a directory")]
    RootNotDirectory { entry: String },
    #[error("tar entry {entry:?} is a hard link to {target:?}, which is not in the tar before it")]
    HardLinkTargetMissing { entry: String, target: String },
    #[error("tar entry {entry:?} is a hard link to the directory {target:?}")]
    HardLinkToDirectory { entry: String, target: String },
    #[error("tar entry {entry:?} is a whiteout without a name to hide")]
    InvalidWhiteout { entry: String },
    #[error("tar entry {entry:?}: the image cannot hold more than 2^32 inodes")]
    TooManyNodes { entry: String },
    #[error("reading the size of the finished image")]
    ImageSize(#[source] io::Error),
    #[error("output file {path:?}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The tree's errors keep their variants (and messages) in a conversion's error.
impl From<TreeError> for Error {
    fn from(error: TreeError) -> Self {
        match error {
            TreeError::InvalidPath { entry, reason } => Error::InvalidPath { entry, reason },
            TreeError::PathEscapesRoot { entry } => Error::PathEscapesRoot { entry },
            TreeError::NotADirectory { entry, parent } => Error::NotADirectory { entry, parent },
            TreeError::RootNotDirectory { entry } => Error::RootNotDirectory { entry },
            TreeError::HardLinkTargetMissing { entry, target } => {
                Error::HardLinkTargetMissing { entry, target }
            }
            TreeError::HardLinkToDirectory { entry, target } => {
                Error::HardLinkToDirectory { entry, target }
            }
            TreeError::TooManyNodes { entry } => Error::TooManyNodes { entry },
        }
    }
}

fn exceeded_at(entry: &Option<String>) -> String {
    match entry {
        Some(entry) => format!("at entry {entry:?}"),
        None => "before the first entry".to_owned(),
    }
}

fn after(previous: &Option<String>) -> String {
    match previous {
        Some(entry) => format!("after entry {entry:?}"),
        None => "the first entry".to_owned(),
    }
}

/// Reads an uncompressed tar stream from `tar` to its end and writes the squashfs image to `out`.
///
/// The whole stream is hashed, end-of-archive blocks and padding included, so that
/// [`Conversion::diff_id`] is the layer's diff_id. On error `out` holds a partial image; see
/// [`convert_to_path`] for a conversion that leaves nothing behind.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A layer with one file, as `docker save` would hold it.
/// let mut builder = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_ustar();
/// header.set_size(6);
/// header.set_mode(0o644);
/// header.set_uid(0);
/// header.set_gid(0);
/// header.set_mtime(1_700_000_000);
/// builder.append_data(&mut header, "etc/motd", &b"hello\n"[..])?;
/// let layer = builder.into_inner()?;
///
/// let image = tempfile::NamedTempFile::new()?;
/// let conversion = tarsquash::convert(
///     &mut &layer[..],
///     image.reopen()?,
///     &tarsquash::Options::default(),
/// )?;
/// assert_eq!(conversion.tar_size, layer.len() as u64);
/// assert!(conversion.diff_id.starts_with("sha256:"));
/// assert_eq!(conversion.image_size, image.as_file().metadata()?.len());
/// # Ok(())
/// # }
/// ```
pub fn convert(tar: &mut dyn Read, out: File, options: &Options) -> Result<Conversion, Error> {
    let probe = InputProbe::new(options.limits.max_tar_bytes);
    let mut writer = ImageWriter::new(out, &options.image)?;
    let mut layer = Layer {
        tree: Tree::new(Meta::implicit_dir()),
        whiteouts: options.whiteouts,
        opaque_dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(TarInput::new(tar, &probe));
    let entries = read_entries(
        &mut archive,
        &probe,
        options.limits.max_entries,
        &mut writer,
        &mut layer,
    );
    let input = archive.into_inner();
    let last = entries?;
    let diff_id = input
        .finish()
        .map_err(|error| input_error(&probe, error, Place::End(last.as_deref())))?;
    let tree = layer.finish();
    let image = writer.finish(tree)?;
    let image_size = image.metadata().map_err(Error::ImageSize)?.len();
    Ok(Conversion {
        diff_id,
        tar_size: probe.consumed(),
        image_size,
    })
}

/// Like [`convert`], into a new file at `output`: the image is written to a temporary file
/// beside it (mode 0644 less the umask), synced, and renamed to `output` only when the
/// conversion succeeded; on any error the temporary file is removed and `output` untouched.
pub fn convert_to_path(
    input: &mut dyn Read,
    output: &Path,
    options: &Options,
) -> Result<Conversion, Error> {
    let output_error = |source: io::Error| Error::Output {
        path: output.to_owned(),
        source,
    };
    let file_name = output.file_name().ok_or_else(|| {
        output_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the output path has no file name",
        ))
    })?;
    let dir = output
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut prefix = OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let temporary = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(output_error)?;
    let file = temporary.as_file().try_clone().map_err(output_error)?;
    let conversion = convert(input, file, options)?;
    temporary.as_file().sync_all().map_err(output_error)?;
    temporary
        .persist(output)
        .map_err(|error| output_error(error.error))?;
    Ok(conversion)
}

/// Where reading the input failed, for the error.
enum Place<'a> {
    /// In the headers starting at `offset`.
    Headers {
        offset: u64,
        previous: Option<&'a str>,
    },
    /// In the data of an entry.
    Entry(&'a str),
    /// After the end of the archive, whose last entry is named.
    End(Option<&'a str>),
}

/// The error for `error`, which reading the input returned at `place`.
fn input_error(probe: &InputProbe, error: io::Error, place: Place<'_>) -> Error {
    if probe.tar_too_large() {
        let entry = match place {
            Place::Headers { previous, .. } => previous,
            Place::Entry(entry) => Some(entry),
            Place::End(last) => last,
        };
        return Error::TarTooLarge {
            limit: probe.max_bytes(),
            entry: entry.map(str::to_owned),
        };
    }
    if probe.source_failed() {
        let offset = probe.consumed();
        return match DecompressError::from_io(error) {
            Ok(source) => Error::Decompress { offset, source },
            Err(source) => Error::Read { offset, source },
        };
    }
    match place {
        Place::Headers { offset, .. } if probe.over_limit() => Error::HeadersTooLarge {
            offset,
            limit: MAX_ENTRY_HEADER_BYTES,
        },
        Place::Headers { offset, previous } if probe.at_eof() => Error::TruncatedHeaders {
            offset,
            previous: previous.map(str::to_owned),
        },
        Place::Headers { offset, previous } => Error::Header {
            offset,
            previous: previous.map(str::to_owned),
            source: error,
        },
        Place::Entry(entry) => Error::Tar {
            entry: entry.to_owned(),
            source: error,
        },
        Place::End(_) => Error::Read {
            offset: probe.consumed(),
            source: error,
        },
    }
}

/// Adds every entry of the archive to the layer; returns the name of the last one.
fn read_entries(
    archive: &mut tar::Archive<TarInput<'_>>,
    probe: &InputProbe,
    max_entries: u64,
    writer: &mut ImageWriter,
    layer: &mut Layer,
) -> Result<Option<String>, Error> {
    let mut entries = archive.entries().map_err(|error| {
        let place = Place::Headers {
            offset: 0,
            previous: None,
        };
        input_error(probe, error, place)
    })?;
    let mut recording = Vec::new();
    let mut previous: Option<String> = None;
    let mut count = 0u64;
    loop {
        let recorded_from = probe.start_recording(recording);
        let next = entries.next();
        recording = probe.stop_recording();
        let place = Place::Headers {
            offset: recorded_from.next_multiple_of(512),
            previous: previous.as_deref(),
        };
        let mut entry = match next {
            None => return Ok(previous),
            Some(Ok(entry)) => entry,
            Some(Err(error)) => return Err(input_error(probe, error, place)),
        };
        count += 1;
        if count > max_entries {
            return Err(Error::TooManyEntries {
                limit: max_entries,
                entry: lossy(&entry.path_bytes()),
            });
        }
        let Some(headers) =
            EntryHeaders::recover(&recording, recorded_from, entry.raw_header_position())
        else {
            let error = io::Error::other("its header blocks are not where the tar crate read them");
            return Err(input_error(probe, error, place));
        };
        previous = Some(layer.add_entry(&mut entry, &headers, writer, probe)?);
    }
}

/// The layer being built.
struct Layer {
    tree: Tree,
    whiteouts: Whiteouts,
    /// Directories holding `.wh..wh..opq` (with `Whiteouts::Overlay`); the attribute is set at
    /// the end so that a later entry for the directory itself does not drop it.
    opaque_dirs: Vec<NodeId>,
}

impl Layer {
    /// Adds one tar entry; returns its name.
    fn add_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        headers: &EntryHeaders,
        writer: &mut ImageWriter,
        probe: &InputProbe,
    ) -> Result<String, Error> {
        let header = &headers.header;
        let header_path = header.path_bytes();
        let records = match &headers.pax {
            Some(data) => pax_records(data).map_err(|reason| Error::Pax {
                entry: lossy(&header_path),
                reason,
            })?,
            None => Vec::new(),
        };
        let pax = Pax(records);
        let type_flag = header.as_old().linkflag[0];
        let is_regular = matches!(type_flag, b'0' | b'\0' | b'7');
        let raw_path = pax
            .get(b"path")
            .or(headers.long_name.as_deref())
            .unwrap_or(&header_path[..]);
        let sparse = if is_regular {
            PaxSparse::from_pax(&pax.0).map_err(|error| pax_sparse_error(raw_path, error))?
        } else {
            None
        };
        // A PAX sparse file is listed under a made-up name; its own is in GNU.sparse.name.
        let raw_path = match (&sparse, pax.get(b"GNU.sparse.name")) {
            (Some(_), Some(name)) => name,
            _ => raw_path,
        };
        let name = lossy(raw_path);

        // The tar crate read the data by its own reading of the size; insist it is ours.
        if type_flag != b'S' {
            let size = match pax.get(b"size") {
                Some(size) => parse_decimal(size).ok_or_else(|| Error::Pax {
                    entry: name.clone(),
                    reason: "the size record is not a number",
                })?,
                None => header.entry_size().map_err(|source| Error::Tar {
                    entry: name.clone(),
                    source,
                })?,
            };
            if size != entry.size() {
                return Err(Error::Pax {
                    entry: name,
                    reason:
                        "the tar crate framed the entry with another size than its records give",
                });
            }
        }

        let mut data = EntryData {
            expected: entry.size(),
            remaining: entry.size(),
            entry,
            failure: None,
        };
        // A global PAX header describes the archive, not an entry; like Docker and containerd,
        // apply it to nothing.
        if type_flag != b'g' {
            let new = NewEntry {
                name: &name,
                raw_path,
                type_flag,
                header,
                headers,
                pax: &pax,
                sparse,
            };
            self.add_node(&new, &mut data, writer, probe)?;
        }
        // Whatever the node did not read (a hard link's data, a whiteout's) is skipped here so
        // that only the next entry's headers are recorded.
        io::copy(&mut data, &mut io::sink()).map_err(|error| {
            data.error(probe, &name).unwrap_or_else(|| Error::Tar {
                entry: name.clone(),
                source: error,
            })
        })?;
        Ok(name)
    }

    fn add_node<R: Read>(
        &mut self,
        new: &NewEntry<'_>,
        data: &mut EntryData<'_, '_, R>,
        writer: &mut ImageWriter,
        probe: &InputProbe,
    ) -> Result<(), Error> {
        let path = EntryPath::parse(new.raw_path)?;
        if self.whiteouts == Whiteouts::Overlay {
            if is_aufs_metadata(&path) {
                return Ok(());
            }
            let is_file = matches!(new.type_flag, b'0' | b'\0' | b'7' | b'S' | b'1');
            if is_file
                && path
                    .file_name()
                    .is_some_and(|name| name.starts_with(b".wh."))
            {
                return self.add_whiteout(&path, new.meta()?);
            }
        }
        let kind = match new.type_flag {
            b'1' => {
                let target = new.link_target()?;
                let target =
                    EntryPath::parse(&target).map_err(|_| Error::HardLinkTargetMissing {
                        entry: new.name.to_owned(),
                        target: lossy(&target),
                    })?;
                self.tree.insert_hard_link(&path, &target)?;
                return Ok(());
            }
            // Pre-POSIX tars mark directories by a trailing slash on a regular entry.
            b'0' | b'\0' if new.raw_path.ends_with(b"/") => NodeKind::Dir,
            b'0' | b'\0' | b'7' | b'S' => NodeKind::File(new.add_file_data(data, writer, probe)?),
            b'2' => {
                let target = new.link_target()?;
                if target.is_empty() {
                    return Err(new.invalid_link_target("is empty"));
                }
                if target.contains(&0) {
                    return Err(new.invalid_link_target("holds a NUL byte"));
                }
                if target.len() > MAX_SYMLINK_LEN {
                    return Err(new.invalid_link_target("is longer than 4095 bytes"));
                }
                NodeKind::Symlink(target.as_ref().into())
            }
            b'3' | b'4' => {
                let (major, minor) = new.device()?;
                if new.type_flag == b'3' {
                    NodeKind::CharDevice { major, minor }
                } else {
                    NodeKind::BlockDevice { major, minor }
                }
            }
            b'5' => NodeKind::Dir,
            b'6' => NodeKind::Fifo,
            type_flag => {
                return Err(Error::UnsupportedType {
                    entry: new.name.to_owned(),
                    type_flag,
                })
            }
        };
        self.tree.insert(&path, kind, new.meta()?)?;
        Ok(())
    }

    fn add_whiteout(&mut self, path: &EntryPath, meta: Meta) -> Result<(), Error> {
        let name = path.file_name().unwrap_or_default();
        if name == b".wh..wh..opq" {
            let dir = self.tree.ensure_dir(&path.parent())?;
            self.opaque_dirs.push(dir);
            return Ok(());
        }
        let hidden = name.get(b".wh.".len()..).unwrap_or_default();
        let device = path
            .with_file_name(hidden)
            .map_err(|_| Error::InvalidWhiteout {
                entry: path.entry().to_owned(),
            })?;
        let kind = NodeKind::CharDevice { major: 0, minor: 0 };
        self.tree.insert(&device, kind, meta)?;
        Ok(())
    }

    fn finish(mut self) -> Tree {
        for dir in self.opaque_dirs {
            self.tree.set_xattr(dir, b"trusted.overlay.opaque", b"y");
        }
        self.tree
    }
}

/// Whether `path` is or lies below an aufs bookkeeping entry (`.wh..wh.*` other than the
/// opaque marker), which overlayfs has no use for and Docker leaves out too.
fn is_aufs_metadata(path: &EntryPath) -> bool {
    let Some((name, parents)) = path.components().split_last() else {
        return false;
    };
    let is_aufs = |name: &[u8]| name.starts_with(b".wh..wh.");
    parents.iter().any(|parent| is_aufs(parent)) || (is_aufs(name) && &name[..] != b".wh..wh..opq")
}

/// Longest symlink target Linux accepts (`PATH_MAX` less the NUL).
const MAX_SYMLINK_LEN: usize = 4095;
/// Longest xattr name (`XATTR_NAME_MAX`) and value (`XATTR_SIZE_MAX`) Linux accepts.
const MAX_XATTR_NAME_LEN: usize = 255;
const MAX_XATTR_VALUE_LEN: usize = 65536;
/// The namespaces squashfs can store; others (`system.posix_acl_*`) are left out.
const XATTR_NAMESPACES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// An entry's PAX records, in order.
struct Pax<'a>(Vec<PaxRecord<'a>>);

impl<'a> Pax<'a> {
    /// The last value of `keyword`; an empty value unsets it (POSIX), giving `None`.
    fn get(&self, keyword: &[u8]) -> Option<&'a [u8]> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| *key == keyword)
            .map(|(_, value)| *value)
            .filter(|value| !value.is_empty())
    }
}

/// One entry's metadata, as its headers give it.
struct NewEntry<'a> {
    name: &'a str,
    raw_path: &'a [u8],
    type_flag: u8,
    header: &'a tar::Header,
    headers: &'a EntryHeaders,
    pax: &'a Pax<'a>,
    sparse: Option<PaxSparse>,
}

impl NewEntry<'_> {
    fn tar_error(&self, source: io::Error) -> Error {
        Error::Tar {
            entry: self.name.to_owned(),
            source,
        }
    }

    fn pax_error(&self, reason: &'static str) -> Error {
        Error::Pax {
            entry: self.name.to_owned(),
            reason,
        }
    }

    fn invalid_link_target(&self, reason: &'static str) -> Error {
        Error::InvalidLinkTarget {
            entry: self.name.to_owned(),
            reason,
        }
    }

    fn link_target(&self) -> Result<Cow<'_, [u8]>, Error> {
        if let Some(target) = self
            .pax
            .get(b"linkpath")
            .or(self.headers.long_link.as_deref())
        {
            return Ok(Cow::Borrowed(target));
        }
        self.header
            .link_name_bytes()
            .ok_or_else(|| self.invalid_link_target("is missing"))
    }

    /// A numeric header field; blank (all NUL or space, as some writers leave unused fields)
    /// reads as 0, as Go's archive/tar has it.
    fn header_number(&self, field: &[u8], parsed: io::Result<u64>) -> Result<u64, Error> {
        if field.iter().all(|&byte| byte == 0 || byte == b' ') {
            return Ok(0);
        }
        parsed.map_err(|source| self.tar_error(source))
    }

    fn id(&self, keyword: &'static str) -> Result<u32, Error> {
        let value = match self.pax.get(keyword.as_bytes()) {
            Some(value) => parse_decimal(value)
                .ok_or_else(|| self.pax_error("a uid or gid is not a number"))?,
            None if keyword == "uid" => {
                self.header_number(&self.header.as_old().uid, self.header.uid())?
            }
            None => self.header_number(&self.header.as_old().gid, self.header.gid())?,
        };
        u32::try_from(value).map_err(|_| Error::IdTooLarge {
            entry: self.name.to_owned(),
            field: keyword,
            value,
        })
    }

    fn mtime(&self) -> Result<u32, Error> {
        if let Some(value) = self.pax.get(b"mtime") {
            return pax_time(value)
                .ok_or_else(|| self.pax_error("the mtime record is not a number"));
        }
        let field = &self.header.as_old().mtime;
        // Base-256 with the sign bit set: a time before 1970.
        if field[0] & 0xc0 == 0xc0 {
            return Ok(0);
        }
        let mtime = self.header_number(field, self.header.mtime())?;
        Ok(u32::try_from(mtime).unwrap_or(u32::MAX))
    }

    fn xattrs(&self) -> Result<Vec<Xattr>, Error> {
        let mut xattrs = BTreeMap::new();
        for (key, value) in &self.pax.0 {
            let Some(name) = key.strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            // A layer must not inject overlayfs markers; namespaces squashfs lacks are dropped.
            let stored = XATTR_NAMESPACES
                .iter()
                .any(|namespace| name.len() > namespace.len() && name.starts_with(namespace));
            if name.starts_with(b"trusted.overlay.") || !stored {
                continue;
            }
            let xattr_error = |reason| Error::Xattr {
                entry: self.name.to_owned(),
                name: lossy(name),
                reason,
            };
            if name.len() > MAX_XATTR_NAME_LEN {
                return Err(xattr_error("the name is longer than 255 bytes"));
            }
            if value.len() > MAX_XATTR_VALUE_LEN {
                return Err(xattr_error("the value is longer than 64 KiB"));
            }
            xattrs.insert(name, *value);
        }
        Ok(xattrs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect())
    }

    fn meta(&self) -> Result<Meta, Error> {
        let mode = self.header.mode().map(u64::from);
        let mode = self.header_number(&self.header.as_old().mode, mode)?;
        Ok(Meta {
            mode: (mode & 0o7777) as u16,
            uid: self.id("uid")?,
            gid: self.id("gid")?,
            mtime: self.mtime()?,
            xattrs: self.xattrs()?,
        })
    }

    fn device(&self) -> Result<(u32, u32), Error> {
        let number = |keyword: &[u8], field: Range<usize>, parsed: io::Result<Option<u32>>| {
            if let Some(value) = self.pax.get(keyword) {
                return parse_decimal(value)
                    .ok_or_else(|| self.pax_error("a device number is not a number"));
            }
            let parsed = parsed.and_then(|parsed| {
                parsed.map(u64::from).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a device in a pre-POSIX header, which has no device numbers",
                    )
                })
            });
            let field = self.header.as_bytes().get(field).unwrap_or_default();
            self.header_number(field, parsed)
        };
        let major = number(b"SCHILY.devmajor", 329..337, self.header.device_major())?;
        let minor = number(b"SCHILY.devminor", 337..345, self.header.device_minor())?;
        match (u32::try_from(major), u32::try_from(minor)) {
            (Ok(major_32), Ok(minor_32)) if major_32 <= 0xfff && minor_32 <= 0xf_ffff => {
                Ok((major_32, minor_32))
            }
            _ => Err(Error::DeviceTooLarge {
                entry: self.name.to_owned(),
                major,
                minor,
            }),
        }
    }

    /// Counts a sparse entry's holes (`holes` zero bytes it expands to beyond its data)
    /// against the layer's byte limit: the image holds them as data, and a few bytes of tar
    /// can declare a file of 2^64 bytes.
    fn expand(&self, probe: &InputProbe, holes: u64) -> Result<(), Error> {
        if probe.expand(holes) {
            Ok(())
        } else {
            Err(Error::TarTooLarge {
                limit: probe.max_bytes(),
                entry: Some(self.name.to_owned()),
            })
        }
    }

    /// Streams the file's content into the image.
    fn add_file_data<R: Read>(
        &self,
        data: &mut EntryData<'_, '_, R>,
        writer: &mut ImageWriter,
        probe: &InputProbe,
    ) -> Result<crate::image::FileData, Error> {
        let sparse_error = |reason| Error::Sparse {
            entry: self.name.to_owned(),
            reason,
        };
        let written = match &self.sparse {
            None => {
                // Old-GNU sparse files come expanded from the `tar` crate: their holes never
                // pass through the input's count. Bound the file by what the limit leaves, and
                // count the bytes it had beyond what it read.
                let size = data.expected;
                if self.type_flag != b'S' {
                    writer.add_file_data(data, size)
                } else {
                    if size > probe.remaining_bytes() {
                        return Err(Error::TarTooLarge {
                            limit: probe.max_bytes(),
                            entry: Some(self.name.to_owned()),
                        });
                    }
                    let before = probe.consumed();
                    let written = writer.add_file_data(data, size);
                    let read = probe.consumed().saturating_sub(before);
                    self.expand(probe, size.saturating_sub(read))?;
                    written
                }
            }
            Some(PaxSparse::Map(map)) => {
                if map.stored_size() != data.expected {
                    return Err(sparse_error("the chunks do not add up to the entry's size"));
                }
                let real_size = map.real_size();
                self.expand(probe, real_size.saturating_sub(map.stored_size()))?;
                writer.add_file_data(&mut map.clone().reader(&mut *data), real_size)
            }
            Some(PaxSparse::MapInData { real_size }) => {
                let (map, map_size) = match SparseMap::read_leading(*real_size, data) {
                    Ok(read) => read,
                    Err(SparseError::Invalid(reason)) => return Err(sparse_error(reason)),
                    Err(SparseError::Read(error)) => {
                        return Err(data
                            .error(probe, self.name)
                            .unwrap_or_else(|| self.tar_error(error)))
                    }
                };
                if map_size.checked_add(map.stored_size()) != Some(data.expected) {
                    return Err(sparse_error("the chunks do not add up to the entry's size"));
                }
                self.expand(probe, real_size.saturating_sub(map.stored_size()))?;
                writer.add_file_data(&mut map.reader(&mut *data), *real_size)
            }
        };
        // An error of the tar input is reported as such, not as the writer's.
        written.map_err(|error| data.error(probe, self.name).unwrap_or(Error::Image(error)))
    }
}

fn pax_sparse_error(raw_path: &[u8], error: SparseError) -> Error {
    let entry = lossy(raw_path);
    match error {
        SparseError::Invalid(reason) => Error::Sparse { entry, reason },
        SparseError::Read(source) => Error::Tar { entry, source },
    }
}

/// A PAX time (`[-]seconds[.fraction]`) as squashfs holds it: before 1970 is 0, after 2106
/// is `u32::MAX`.
fn pax_time(value: &[u8]) -> Option<u32> {
    let (negative, unsigned) = match value {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, value),
    };
    let mut parts = unsigned.splitn(2, |&byte| byte == b'.');
    let seconds = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or_default();
    let all_digits = |digits: &[u8]| digits.iter().all(u8::is_ascii_digit);
    if seconds.is_empty() || !all_digits(seconds) || !all_digits(fraction) {
        return None;
    }
    if negative {
        return Some(0);
    }
    let seconds = seconds.iter().fold(0u64, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How reading an entry's data failed.
enum DataFailure {
    /// The stream ended first.
    Truncated,
    Input(io::Error),
}

/// An entry's data: ends with an error (and remembers why) if the stream ends early, so that a
/// truncated tar is never taken for a shorter file.
struct EntryData<'e, 'a, R: Read> {
    entry: &'e mut tar::Entry<'a, R>,
    expected: u64,
    remaining: u64,
    failure: Option<DataFailure>,
}

impl<R: Read> EntryData<'_, '_, R> {
    /// The error for a read that failed because of the input, if one did.
    fn error(&mut self, probe: &InputProbe, entry: &str) -> Option<Error> {
        Some(match self.failure.take()? {
            DataFailure::Truncated => Error::Truncated {
                entry: entry.to_owned(),
                expected: self.expected,
                got: self.expected - self.remaining,
            },
            DataFailure::Input(error) => input_error(probe, error, Place::Entry(entry)),
        })
    }
}

impl<R: Read> Read for EntryData<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.remaining.min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        match self.entry.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => {
                self.failure = Some(DataFailure::Truncated);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ends inside the entry's data",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) => {
                // The reader gets a copy; the original is kept for the conversion's error.
                let copy = io::Error::new(error.kind(), error.to_string());
                self.failure = Some(DataFailure::Input(error));
                Err(copy)
            }
        }
    }
}
