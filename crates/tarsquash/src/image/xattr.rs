//! The xattr tables: key/value sets (each distinct set stored once), the id table that inodes
//! index, and the table header that the superblock points to.
//!
//! Squashfs stores a name as one of three namespaces plus the rest of the name, so only
//! `user.`, `trusted.` and `security.` names (with something after the namespace) can be
//! stored. The writer refuses other names ([`ImageError::XattrNamespace`]) rather than
//! dropping data silently; a front end that wants tar2sqfs's behaviour (skip with a warning)
//! filters with [`xattr_name_supported`] first.

use std::collections::HashMap;

use super::compressor::BlockCompressor;
use super::layout::NONE_U32;
use super::metadata::{lookup_table, MetadataWriter};
use super::ImageError;

/// One attribute: full name (namespace prefix included) and value, as [`Meta`] has them.
///
/// [`Meta`]: crate::tree::Meta
type Xattr = (Box<[u8]>, Box<[u8]>);

/// Namespace prefixes and the type numbers squashfs stores for them.
const NAMESPACES: [(&[u8], u16); 3] = [(b"user.", 0), (b"trusted.", 1), (b"security.", 2)];

/// Whether squashfs can store an extended attribute of this name: one of its namespaces and
/// a non-empty rest (Linux has no attribute called just `user.`).
pub fn xattr_name_supported(name: &[u8]) -> bool {
    namespace(name).is_some()
}

/// The namespace type number and the rest of a storable name.
fn namespace(name: &[u8]) -> Option<(u16, &[u8])> {
    NAMESPACES.iter().find_map(|(prefix, kind)| {
        let rest = name.strip_prefix(*prefix)?;
        (!rest.is_empty()).then_some((*kind, rest))
    })
}

#[derive(Default)]
pub(crate) struct XattrTable {
    pairs: MetadataWriter,
    /// 16-byte id entries: reference to the first pair, pair count, bytes of the pairs.
    ids: Vec<u8>,
    /// Serialized set → its id, so identical sets are stored once.
    known: HashMap<Vec<u8>, u32>,
}

/// The xattr tables as they are written, and where the superblock must point.
pub(crate) struct XattrTables {
    pub bytes: Vec<u8>,
    /// Offset of the table header inside `bytes`.
    pub header_offset: u64,
}

impl XattrTable {
    /// The xattr id for a set of attributes ([`NONE_U32`] for none); `path` names the inode in
    /// errors.
    pub(crate) fn id(
        &mut self,
        xattrs: &[Xattr],
        path: impl Fn() -> String,
        compressor: &mut BlockCompressor,
    ) -> Result<u32, ImageError> {
        if xattrs.is_empty() {
            return Ok(NONE_U32);
        }
        let mut set = Vec::new();
        for (name, value) in xattrs {
            let Some((kind, rest)) = namespace(name) else {
                return Err(ImageError::XattrNamespace {
                    path: path(),
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            };
            let too_large = |what| ImageError::EntryTooLarge { path: path(), what };
            let name_len = u16::try_from(rest.len()).map_err(|_| too_large("xattr name"))?;
            let value_len = u32::try_from(value.len()).map_err(|_| too_large("xattr value"))?;
            set.extend_from_slice(&kind.to_le_bytes());
            set.extend_from_slice(&name_len.to_le_bytes());
            set.extend_from_slice(rest);
            set.extend_from_slice(&value_len.to_le_bytes());
            set.extend_from_slice(value);
        }
        if let Some(&id) = self.known.get(&set) {
            return Ok(id);
        }
        let too_large = || ImageError::EntryTooLarge {
            path: path(),
            what: "xattr set",
        };
        let count = u32::try_from(xattrs.len()).map_err(|_| too_large())?;
        let size = u32::try_from(set.len()).map_err(|_| too_large())?;
        let id = u32::try_from(self.known.len())
            .ok()
            .filter(|&id| id != NONE_U32)
            .ok_or(ImageError::TableTooLarge { table: "xattr id" })?;
        self.ids
            .extend_from_slice(&self.pairs.position().packed().to_le_bytes());
        self.ids.extend_from_slice(&count.to_le_bytes());
        self.ids.extend_from_slice(&size.to_le_bytes());
        self.pairs.append(&set, compressor)?;
        self.known.insert(set, id);
        Ok(id)
    }

    /// Lays the tables out for absolute offset `start`; `None` when no inode has xattrs.
    pub(crate) fn finish(
        self,
        start: u64,
        compressor: &mut BlockCompressor,
    ) -> Result<Option<XattrTables>, ImageError> {
        if self.known.is_empty() {
            return Ok(None);
        }
        let mut bytes = self.pairs.finish(compressor)?;
        let ids_start = start + bytes.len() as u64;
        let ids = lookup_table(&self.ids, ids_start, compressor)?;
        let (id_blocks, lookup) = ids.bytes.split_at(ids.lookup_offset as usize);
        bytes.extend_from_slice(id_blocks);
        let header_offset = bytes.len() as u64;
        bytes.extend_from_slice(&start.to_le_bytes());
        // `known` holds fewer than u32::MAX sets (checked in `id`).
        bytes.extend_from_slice(&(self.known.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(lookup);
        Ok(Some(XattrTables {
            bytes,
            header_offset,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<Xattr> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().into(), v.as_bytes().into()))
            .collect()
    }

    #[test]
    fn identical_sets_share_an_id() {
        let mut compressor = BlockCompressor::new(3).unwrap();
        let mut table = XattrTable::default();
        let path = || "/f".to_string();
        let a = attrs(&[("security.capability", "x"), ("user.a", "1")]);
        let b = attrs(&[("user.a", "1")]);
        assert_eq!(table.id(&[], path, &mut compressor).unwrap(), NONE_U32);
        assert_eq!(table.id(&a, path, &mut compressor).unwrap(), 0);
        assert_eq!(table.id(&b, path, &mut compressor).unwrap(), 1);
        assert_eq!(table.id(&a.clone(), path, &mut compressor).unwrap(), 0);
        assert_eq!(table.ids.len(), 32);
    }

    #[test]
    fn other_namespaces_are_refused_by_name() {
        let mut compressor = BlockCompressor::new(3).unwrap();
        let mut table = XattrTable::default();
        let acl = attrs(&[("system.posix_acl_access", "x")]);
        let error = table
            .id(&acl, || "/etc/f".to_string(), &mut compressor)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "extended attribute system.posix_acl_access of /etc/f: squashfs stores only \
             user., trusted. and security. names"
        );
        assert!(!xattr_name_supported(b"system.posix_acl_access"));
        assert!(xattr_name_supported(b"trusted.overlay.opaque"));
        assert!(!xattr_name_supported(b"user."));
    }
}
