//! Tars written entry by entry with names, link targets and numbers exactly as given.

use tar::{EntryType, Header};

use crate::tree::{Kind, Node};

/// Metadata of a hand-written tar entry.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

pub const FILE: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};
pub const DIR: Meta = Meta {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};
/// Symlinks as GNU tar writes them (their mode means nothing to Linux).
pub const LINK: Meta = Meta {
    mode: 0o777,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};

impl Meta {
    pub fn node(&self, kind: Kind) -> Node {
        Node::new(kind, self.mode, self.uid, self.gid, self.mtime as i64)
    }
}

/// Writes tars entry by entry with names and link targets exactly as given (the `tar` crate's
/// Builder rewrites `./`, `/` and refuses `..`, which these tests need verbatim). Names and
/// targets over 100 bytes get GNU long name / long link entries.
pub struct TarWriter {
    out: Vec<u8>,
}

impl Default for TarWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TarWriter {
    pub fn new() -> TarWriter {
        TarWriter { out: Vec::new() }
    }

    /// A GNU header with `name` and `link` (each up to 100 bytes) and a valid checksum.
    pub fn header(kind: EntryType, name: &[u8], link: &[u8], meta: Meta, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(size);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_cksum();
        header
    }

    /// Appends a header and its data, padded to 512 bytes, all verbatim.
    pub fn raw(&mut self, header: &Header, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(header.as_bytes());
        self.data(data)
    }

    /// Appends bytes padded to a multiple of 512.
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.out.extend_from_slice(data);
        let padded = self.out.len().next_multiple_of(512);
        self.out.resize(padded, 0);
        self
    }

    fn long(&mut self, kind: EntryType, value: &[u8]) {
        let mut data = value.to_vec();
        data.push(0);
        let header = Self::header(kind, b"././@LongLink", b"", FILE, data.len() as u64);
        self.raw(&header, &data);
    }

    /// Any entry; long names and targets go through GNU `L`/`K` entries.
    pub fn entry(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: Meta,
        data: &[u8],
    ) -> &mut Self {
        let header = self.long_header(kind, name, link, meta, data.len() as u64);
        self.raw(&header, data)
    }

    /// Writes the GNU long name/link entries `name` and `link` need; returns the header.
    fn long_header(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: &[u8],
        meta: Meta,
        size: u64,
    ) -> Header {
        let short_name = if name.len() > 100 {
            self.long(EntryType::GNULongName, name);
            &name[..100]
        } else {
            name
        };
        let short_link = if link.len() > 100 {
            self.long(EntryType::GNULongLink, link);
            &link[..100]
        } else {
            link
        };
        Self::header(kind, short_name, short_link, meta, size)
    }

    pub fn file(&mut self, name: &str, meta: Meta, data: &[u8]) -> &mut Self {
        self.entry(EntryType::Regular, name.as_bytes(), b"", meta, data)
    }

    pub fn dir(&mut self, name: &str, meta: Meta) -> &mut Self {
        self.entry(EntryType::Directory, name.as_bytes(), b"", meta, b"")
    }

    pub fn symlink(&mut self, name: &str, meta: Meta, target: &str) -> &mut Self {
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            meta,
            b"",
        )
    }

    pub fn hard_link(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            FILE,
            b"",
        )
    }

    pub fn device(
        &mut self,
        kind: EntryType,
        name: &str,
        meta: Meta,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut header = self.long_header(kind, name.as_bytes(), b"", meta, 0);
        header.set_device_major(major).expect("device major");
        header.set_device_minor(minor).expect("device minor");
        header.set_cksum();
        self.raw(&header, b"")
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // The length counts itself: find the number of digits that makes it consistent.
            let rest = 3 + key.len() + value.len();
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let header = Self::header(
            EntryType::XHeader,
            b"PaxHeaders/entry",
            b"",
            FILE,
            data.len() as u64,
        );
        self.raw(&header, &data)
    }

    /// The archive with its two zero end blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.resize(out.len() + 1024, 0);
        out
    }
}
