//! GNU sparse files in PAX form: formats 0.0 and 0.1 (map in PAX records) and 1.0 (map at the
//! start of the entry's data), as `tar --format=pax --sparse` writes them. The old-GNU form
//! (type `S`) is expanded by the `tar` crate itself.

use std::io::{self, Read};

use crate::tar_input::{parse_decimal, PaxRecord};

/// Most data chunks one sparse map may list (16 bytes of memory each).
const MAX_CHUNKS: usize = 1 << 20;

/// Why a sparse map could not be used.
#[derive(Debug)]
pub(crate) enum SparseError {
    /// Reading the map out of the entry's data failed.
    Read(io::Error),
    Invalid(&'static str),
}

impl From<&'static str> for SparseError {
    fn from(reason: &'static str) -> Self {
        SparseError::Invalid(reason)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    offset: u64,
    len: u64,
}

/// Where the stored data of a sparse file goes: chunks in increasing offset order, zeros
/// everywhere else up to `real_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SparseMap {
    real_size: u64,
    chunks: Vec<Chunk>,
}

/// The sparse form an entry's PAX records announce.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PaxSparse {
    /// Formats 0.0 and 0.1: the map is in the records.
    Map(SparseMap),
    /// Format 1.0: the map leads the entry's data.
    MapInData { real_size: u64 },
}

fn last<'a>(records: &[PaxRecord<'a>], keyword: &[u8]) -> Option<&'a [u8]> {
    records
        .iter()
        .rev()
        .find(|(key, _)| *key == keyword)
        .map(|(_, value)| *value)
}

fn number(value: &[u8], what: &'static str) -> Result<u64, SparseError> {
    parse_decimal(value).ok_or(SparseError::Invalid(what))
}

impl PaxSparse {
    /// The sparse form of an entry with these PAX records, if any.
    pub(crate) fn from_pax(records: &[PaxRecord<'_>]) -> Result<Option<PaxSparse>, SparseError> {
        let major = last(records, b"GNU.sparse.major");
        let minor = last(records, b"GNU.sparse.minor");
        if major.is_some() || minor.is_some() {
            if major != Some(b"1") || minor != Some(b"0") {
                return Err("only GNU sparse formats 0.0, 0.1 and 1.0 are supported".into());
            }
            let real_size = last(records, b"GNU.sparse.realsize")
                .ok_or("format 1.0 without GNU.sparse.realsize")?;
            let real_size = number(real_size, "GNU.sparse.realsize is not a number")?;
            return Ok(Some(PaxSparse::MapInData { real_size }));
        }
        let numbers: Vec<u64> = if let Some(map) = last(records, b"GNU.sparse.map") {
            map.split(|&byte| byte == b',')
                .map(|field| number(field, "GNU.sparse.map holds a non-number"))
                .collect::<Result<_, _>>()?
        } else {
            // Format 0.0 repeats offset/numbytes pairs, in that order.
            let mut numbers = Vec::new();
            for (key, value) in records {
                let wants_offset = numbers.len() % 2 == 0;
                match (*key, wants_offset) {
                    (b"GNU.sparse.offset", true) | (b"GNU.sparse.numbytes", false) => numbers.push(
                        number(value, "GNU.sparse.offset or numbytes is not a number")?,
                    ),
                    (b"GNU.sparse.offset", false) | (b"GNU.sparse.numbytes", true) => {
                        return Err("GNU.sparse.offset and numbytes records do not alternate".into())
                    }
                    _ => {}
                }
            }
            numbers
        };
        let has_numblocks = last(records, b"GNU.sparse.numblocks").is_some();
        if numbers.is_empty() && !has_numblocks && last(records, b"GNU.sparse.map").is_none() {
            return Ok(None);
        }
        let real_size =
            last(records, b"GNU.sparse.size").ok_or("a GNU sparse map without GNU.sparse.size")?;
        let real_size = number(real_size, "GNU.sparse.size is not a number")?;
        let map = SparseMap::from_numbers(real_size, &numbers)?;
        if let Some(count) = last(records, b"GNU.sparse.numblocks") {
            if number(count, "GNU.sparse.numblocks is not a number")? != map.chunks.len() as u64 {
                return Err("GNU.sparse.numblocks disagrees with the map".into());
            }
        }
        Ok(Some(PaxSparse::Map(map)))
    }
}

impl SparseMap {
    /// A map from `offset, length, offset, length, …`, checked: chunks in order, not
    /// overlapping, within `real_size`.
    fn from_numbers(real_size: u64, numbers: &[u64]) -> Result<SparseMap, SparseError> {
        if !numbers.len().is_multiple_of(2) {
            return Err("a sparse map has an offset without a length".into());
        }
        if numbers.len() / 2 > MAX_CHUNKS {
            return Err("a sparse map lists more than 2^20 chunks".into());
        }
        let mut chunks = Vec::with_capacity(numbers.len() / 2);
        let mut end = 0u64;
        for pair in numbers.chunks_exact(2) {
            let &[offset, len] = pair else {
                return Err("a sparse map has an offset without a length".into());
            };
            if offset < end {
                return Err("sparse chunks overlap or are out of order".into());
            }
            end = offset
                .checked_add(len)
                .filter(|&end| end <= real_size)
                .ok_or("a sparse chunk ends beyond the file size")?;
            chunks.push(Chunk { offset, len });
        }
        Ok(SparseMap { real_size, chunks })
    }

    /// Reads a format 1.0 map from the start of an entry's data: decimal numbers one per
    /// line (the chunk count, then offset and length of each), padded to a 512-byte block.
    /// Returns the map and the bytes of data it took.
    pub(crate) fn read_leading(
        real_size: u64,
        data: &mut dyn Read,
    ) -> Result<(SparseMap, u64), SparseError> {
        let mut lines = NumberLines {
            block: [0; 512],
            next: 512,
            blocks: 0,
        };
        let count = lines.next_number(data)?;
        let count = usize::try_from(count)
            .ok()
            .filter(|&count| count <= MAX_CHUNKS)
            .ok_or("a sparse map lists more than 2^20 chunks")?;
        let mut numbers = Vec::new();
        for _ in 0..2 * count {
            numbers.push(lines.next_number(data)?);
        }
        let map = SparseMap::from_numbers(real_size, &numbers)?;
        Ok((map, lines.blocks * 512))
    }

    /// Bytes of the entry's data the chunks take.
    pub(crate) fn stored_size(&self) -> u64 {
        self.chunks.iter().map(|chunk| chunk.len).sum()
    }

    pub(crate) fn real_size(&self) -> u64 {
        self.real_size
    }

    /// Expands `stored`, the chunks' bytes back to back, into the whole file.
    pub(crate) fn reader<R: Read>(self, stored: R) -> SparseReader<R> {
        let mut chunks = self.chunks.into_iter();
        SparseReader {
            current: chunks.next(),
            chunks,
            stored,
            position: 0,
            real_size: self.real_size,
        }
    }
}

struct NumberLines {
    block: [u8; 512],
    /// Index of the next unread byte of `block`.
    next: usize,
    /// Blocks read so far.
    blocks: u64,
}

impl NumberLines {
    fn next_number(&mut self, data: &mut dyn Read) -> Result<u64, SparseError> {
        let mut line = Vec::new();
        loop {
            let byte = match self.block.get(self.next) {
                Some(&byte) => byte,
                None => {
                    data.read_exact(&mut self.block)
                        .map_err(SparseError::Read)?;
                    self.blocks += 1;
                    self.next = 0;
                    continue;
                }
            };
            self.next += 1;
            if byte == b'\n' {
                return Ok(parse_decimal(&line).ok_or("the sparse map holds a non-number")?);
            }
            if line.len() == 20 {
                return Err("the sparse map holds a non-number".into());
            }
            line.push(byte);
        }
    }
}

/// The whole content of a sparse file from its stored chunks.
pub(crate) struct SparseReader<R> {
    stored: R,
    current: Option<Chunk>,
    chunks: std::vec::IntoIter<Chunk>,
    position: u64,
    real_size: u64,
}

impl<R: Read> SparseReader<R> {
    fn zeros(&mut self, buf: &mut [u8], until: u64) -> usize {
        let n = (until - self.position).min(buf.len() as u64) as usize;
        let zeroed = buf.get_mut(..n).unwrap_or_default();
        zeroed.fill(0);
        self.position += zeroed.len() as u64;
        zeroed.len()
    }
}

impl<R: Read> Read for SparseReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(chunk) = self.current else {
                return Ok(self.zeros(buf, self.real_size));
            };
            // Chunks were checked to end within real_size, so this does not overflow.
            let end = chunk.offset + chunk.len;
            if self.position < chunk.offset {
                return Ok(self.zeros(buf, chunk.offset));
            }
            if self.position < end {
                let want = (end - self.position).min(buf.len() as u64) as usize;
                let n = self.stored.read(buf.get_mut(..want).unwrap_or_default())?;
                self.position += n as u64;
                return Ok(n);
            }
            self.current = self.chunks.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<PaxRecord<'a>> {
        pairs
            .iter()
            .map(|(key, value)| (key.as_bytes(), value.as_bytes()))
            .collect()
    }

    fn expand(map: SparseMap, stored: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        map.reader(stored).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn format_0_1_map_expands_with_holes() {
        let pax = records(&[
            ("GNU.sparse.size", "20"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.map", "2,3,10,4"),
        ]);
        let Some(PaxSparse::Map(map)) = PaxSparse::from_pax(&pax).unwrap() else {
            panic!("expected a 0.1 map");
        };
        assert_eq!(map.stored_size(), 7);
        let mut expected = vec![0u8; 20];
        expected.get_mut(2..5).unwrap().copy_from_slice(b"abc");
        expected.get_mut(10..14).unwrap().copy_from_slice(b"defg");
        assert_eq!(expand(map, b"abcdefg"), expected);
    }

    #[test]
    fn format_0_0_pairs_expand() {
        let pax = records(&[
            ("GNU.sparse.size", "8"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "1"),
            ("GNU.sparse.offset", "7"),
            ("GNU.sparse.numbytes", "1"),
        ]);
        let Some(PaxSparse::Map(map)) = PaxSparse::from_pax(&pax).unwrap() else {
            panic!("expected a 0.0 map");
        };
        assert_eq!(expand(map, b"xy"), b"x\0\0\0\0\0\0y");
    }

    #[test]
    fn format_1_0_map_leads_the_data() {
        let pax = records(&[
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.realsize", "1048576"),
            ("GNU.sparse.name", "big"),
        ]);
        assert_eq!(
            PaxSparse::from_pax(&pax).unwrap(),
            Some(PaxSparse::MapInData { real_size: 1048576 })
        );
        let mut data = b"2\n0\n3\n1048575\n1\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcz");
        let mut reader = &data[..];
        let (map, taken) = SparseMap::read_leading(1048576, &mut reader).unwrap();
        assert_eq!(taken, 512);
        assert_eq!(map.stored_size(), 4);
        let out = expand(map, reader);
        assert_eq!(out.len(), 1048576);
        assert_eq!(out.get(..3).unwrap(), b"abc");
        assert_eq!(out.last(), Some(&b'z'));
        assert!(out.get(3..1048575).unwrap().iter().all(|&byte| byte == 0));
    }

    #[test]
    fn plain_pax_records_are_not_sparse() {
        let pax = records(&[("path", "a"), ("mtime", "1.5")]);
        assert_eq!(PaxSparse::from_pax(&pax).unwrap(), None);
    }

    #[test]
    fn bad_maps_are_refused() {
        let cases: &[&[(&str, &str)]] = &[
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,5,4,2")],
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "8,5")],
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "1,2,3")],
            &[("GNU.sparse.size", "10"), ("GNU.sparse.map", "1,x")],
            &[("GNU.sparse.map", "1,2")],
            &[
                ("GNU.sparse.size", "10"),
                ("GNU.sparse.numblocks", "3"),
                ("GNU.sparse.map", "1,2"),
            ],
            &[
                ("GNU.sparse.size", "10"),
                ("GNU.sparse.offset", "1"),
                ("GNU.sparse.offset", "2"),
            ],
            &[("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")],
            &[("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")],
            &[
                ("GNU.sparse.size", "18446744073709551615"),
                ("GNU.sparse.map", "18446744073709551615,1"),
            ],
        ];
        for pax in cases {
            assert!(PaxSparse::from_pax(&records(pax)).is_err(), "{pax:?}");
        }
        let leading: &[&[u8]] = &[
            b"1\n0\nx\n",                     // not a number
            b"2\n0\n1\n",                     // ends (in padding) before the map does
            b"99999999999\n",                 // too many chunks
            b"1\n0\n123456789012345678901\n", // a number longer than 20 digits
            b"1\n5\n200\n",                   // beyond the file size
        ];
        for data in leading {
            let mut padded = data.to_vec();
            padded.resize(512, 0);
            assert!(
                SparseMap::read_leading(100, &mut &padded[..]).is_err(),
                "{data:?}"
            );
        }
        let unpadded = SparseMap::read_leading(100, &mut &b"2\n0\n"[..]);
        assert!(
            matches!(unpadded, Err(SparseError::Read(_))),
            "{unpadded:?}"
        );
    }
}
