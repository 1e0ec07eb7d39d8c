//! The tar stream as the `tar` crate reads it: hashed and counted, with the header blocks of
//! each entry recorded so that their metadata can be read as written.
//!
//! Why record: tar 0.4.46 splits PAX records at newlines instead of walking them by their
//! length prefix (composefs/tar-rs#452), so a binary value holding `0x0a` (a
//! `security.capability` or an ACL xattr) comes back as "malformed", and the pieces of such a
//! value can pass for records of their own. The crate still frames the stream (checksums,
//! sizes, old-GNU sparse maps); the metadata of every entry is taken from its recorded header
//! blocks by [`EntryHeaders::recover`] and [`pax_records`]. Recording also caps what one entry's
//! headers (GNU long names, PAX data, sparse extension blocks) may take, which the crate does
//! not: a long-name header declaring 2^60 bytes would otherwise be read into memory.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Most bytes the header blocks of one entry may take (GNU long name and link, PAX data,
/// old-GNU sparse extension blocks, and the padding before them).
pub(crate) const MAX_ENTRY_HEADER_BYTES: u64 = 1 << 20;

/// What the conversion loop and the reader inside the `tar::Archive` share.
#[derive(Debug)]
pub(crate) struct InputProbe {
    /// Bytes read from the source so far.
    consumed: Cell<u64>,
    /// Zero bytes that sparse entries add beyond what the source holds (their holes): counted
    /// with `consumed` against `max_bytes`, since the image holds them as data.
    expanded: Cell<u64>,
    /// Most bytes the source may give ([`Limits::max_tar_bytes`](crate::Limits)).
    max_bytes: u64,
    /// The source had more than `max_bytes`.
    tar_too_large: Cell<bool>,
    /// The source returned an error (its errors are the source's, not the tar's).
    source_failed: Cell<bool>,
    /// The source reached its end.
    at_eof: Cell<bool>,
    /// The header blocks of one entry went over [`MAX_ENTRY_HEADER_BYTES`].
    over_limit: Cell<bool>,
    /// Bytes read since [`InputProbe::start_recording`], while recording.
    recording: RefCell<Option<Vec<u8>>>,
}

impl InputProbe {
    pub(crate) fn new(max_bytes: u64) -> Self {
        InputProbe {
            consumed: Cell::new(0),
            expanded: Cell::new(0),
            max_bytes,
            tar_too_large: Cell::new(false),
            source_failed: Cell::new(false),
            at_eof: Cell::new(false),
            over_limit: Cell::new(false),
            recording: RefCell::new(None),
        }
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Counts `holes` more bytes of sparse entries; `false` (and the probe marks the tar too
    /// large) when they take the layer past `max_bytes`.
    pub(crate) fn expand(&self, holes: u64) -> bool {
        let expanded = self.expanded.get().saturating_add(holes);
        self.expanded.set(expanded);
        let within = expanded.saturating_add(self.consumed.get()) <= self.max_bytes;
        if !within {
            self.tar_too_large.set(true);
        }
        within
    }

    /// Bytes the limit still allows: `max_bytes` less what was read and expanded.
    pub(crate) fn remaining_bytes(&self) -> u64 {
        self.max_bytes
            .saturating_sub(self.consumed.get())
            .saturating_sub(self.expanded.get())
    }

    pub(crate) fn tar_too_large(&self) -> bool {
        self.tar_too_large.get()
    }

    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.get()
    }

    pub(crate) fn source_failed(&self) -> bool {
        self.source_failed.get()
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.at_eof.get()
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.over_limit.get()
    }

    /// Starts keeping the bytes read from now on; returns the stream offset they start at.
    pub(crate) fn start_recording(&self, mut buffer: Vec<u8>) -> u64 {
        buffer.clear();
        *self.recording.borrow_mut() = Some(buffer);
        self.consumed.get()
    }

    pub(crate) fn stop_recording(&self) -> Vec<u8> {
        self.recording.borrow_mut().take().unwrap_or_default()
    }
}

/// The reader the `tar::Archive` reads: hashes and counts every byte of the source.
pub(crate) struct TarInput<'a> {
    source: &'a mut dyn Read,
    hasher: Sha256,
    probe: &'a InputProbe,
}

impl<'a> TarInput<'a> {
    pub(crate) fn new(source: &'a mut dyn Read, probe: &'a InputProbe) -> Self {
        TarInput {
            source,
            hasher: Sha256::new(),
            probe,
        }
    }

    /// Reads the rest of the stream (end-of-archive blocks, padding, anything after them: the
    /// diff_id covers it all); returns `sha256:<hex>` of the whole stream.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = self.hasher.finalize();
        let mut diff_id = String::with_capacity(7 + 2 * digest.len());
        diff_id.push_str("sha256:");
        for byte in digest.iter() {
            diff_id.push(hex_digit(byte >> 4));
            diff_id.push(hex_digit(byte & 0xf));
        }
        Ok(diff_id)
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

impl Read for TarInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than the limit allows is asked for, so that a stream of exactly
        // `max_bytes` passes and one byte more fails, however the reads fall.
        let allowed = self
            .probe
            .max_bytes
            .saturating_sub(self.probe.consumed.get());
        let want =
            usize::try_from(allowed.saturating_add(1)).map_or(buf.len(), |n| n.min(buf.len()));
        let buf = buf.get_mut(..want).unwrap_or_default();
        let n = match self.source.read(buf) {
            Ok(n) => n,
            Err(error) => {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.probe.source_failed.set(true);
                }
                return Err(error);
            }
        };
        let Some(data) = buf.get(..n) else {
            self.probe.source_failed.set(true);
            return Err(io::Error::other(
                "the source reported more bytes than it was given room for",
            ));
        };
        if n == 0 && !buf.is_empty() {
            self.probe.at_eof.set(true);
        }
        if n as u64 > allowed {
            self.probe.tar_too_large.set(true);
            return Err(io::Error::other("the tar is larger than max_tar_bytes"));
        }
        self.hasher.update(data);
        self.probe
            .consumed
            .set(self.probe.consumed.get() + n as u64);
        if let Some(recording) = self.probe.recording.borrow_mut().as_mut() {
            if (recording.len() + n) as u64 > MAX_ENTRY_HEADER_BYTES {
                self.probe.over_limit.set(true);
                return Err(io::Error::other("an entry's header blocks are too large"));
            }
            recording.extend_from_slice(data);
        }
        Ok(n)
    }
}

const BLOCK: usize = 512;

/// The header blocks of one entry as the stream has them.
pub(crate) struct EntryHeaders {
    /// The entry's own header, before the `tar` crate applied PAX uid/gid to it.
    pub header: tar::Header,
    /// GNU long name (`L`), cut at its NUL.
    pub long_name: Option<Vec<u8>>,
    /// GNU long link name (`K`), cut at its NUL.
    pub long_link: Option<Vec<u8>>,
    /// Data of the PAX extended header (`x`) for this entry.
    pub pax: Option<Vec<u8>>,
}

impl EntryHeaders {
    /// Finds the headers in `recorded`, the bytes the `tar` crate read to produce one entry,
    /// starting at stream offset `recorded_from`; the entry's own header is at stream offset
    /// `header_position`. `None` when the recording does not hold what the crate read.
    pub(crate) fn recover(
        recorded: &[u8],
        recorded_from: u64,
        header_position: u64,
    ) -> Option<Self> {
        // The crate reads the previous entry's padding first; headers start block-aligned.
        let first = recorded_from.checked_next_multiple_of(BLOCK as u64)?;
        let mut at = usize::try_from(first - recorded_from).ok()?;
        let main = usize::try_from(header_position.checked_sub(recorded_from)?).ok()?;
        let (mut long_name, mut long_link, mut pax) = (None, None, None);
        while at < main {
            let header = header_at(recorded, at)?;
            let size = usize::try_from(header.entry_size().ok()?).ok()?;
            let data_start = at.checked_add(BLOCK)?;
            let data = recorded.get(data_start..data_start.checked_add(size)?)?;
            match header.as_old().linkflag[0] {
                b'L' => long_name = Some(until_nul(data).to_vec()),
                b'K' => long_link = Some(until_nul(data).to_vec()),
                b'x' => pax = Some(data.to_vec()),
                _ => return None,
            }
            at = data_start.checked_add(size.checked_next_multiple_of(BLOCK)?)?;
        }
        if at != main {
            return None;
        }
        Some(EntryHeaders {
            header: header_at(recorded, main)?,
            long_name,
            long_link,
            pax,
        })
    }
}

fn header_at(recorded: &[u8], at: usize) -> Option<tar::Header> {
    let block: &[u8; BLOCK] = recorded.get(at..at.checked_add(BLOCK)?)?.try_into().ok()?;
    let mut header = tar::Header::new_old();
    *header.as_mut_bytes() = *block;
    Some(header)
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&byte| byte == 0).next().unwrap_or(bytes)
}

/// One PAX record: (keyword, value).
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits PAX extended header data into its `(keyword, value)` records, in order, walking
/// them by their length prefix (`"<len> <keyword>=<value>\n"`, `<len>` counting the whole
/// record), so values may hold any byte.
pub(crate) fn pax_records(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, &'static str> {
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let digits = rest
            .iter()
            .take(20)
            .position(|&byte| byte == b' ')
            .ok_or("a record does not start with its length")?;
        let len = rest
            .get(..digits)
            .and_then(parse_decimal)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or("a record's length is not a decimal number")?;
        if len <= digits + 1 || len > rest.len() {
            return Err("a record's length does not fit the header");
        }
        let (record, tail) = rest.split_at(len);
        let body = match record.get(digits + 1..) {
            Some([body @ .., b'\n']) => body,
            _ => return Err("a record does not end with a newline"),
        };
        let equals = body
            .iter()
            .position(|&byte| byte == b'=')
            .ok_or("a record has no `=`")?;
        let (keyword, value) = body.split_at(equals);
        if keyword.is_empty() {
            return Err("a record has an empty keyword");
        }
        records.push((keyword, value.get(1..).unwrap_or_default()));
        rest = tail;
    }
    Ok(records)
}

/// A decimal number of ASCII digits only (no sign, no spaces).
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &byte| {
        let digit = char::from(byte).to_digit(10)?;
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(keyword: &str, value: &[u8]) -> Vec<u8> {
        // ' ', '=' and '\n' besides keyword and value; the length counts its own digits.
        let body_len = keyword.len() + value.len() + 3;
        let len = (1..)
            .map(|digits| body_len + digits)
            .find(|len| len.to_string().len() + body_len == *len)
            .unwrap();
        let mut out = format!("{len} {keyword}=").into_bytes();
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let capability = [
            1, 0, 0, 2, 2, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut data = record("SCHILY.xattr.security.capability", &capability);
        data.extend(record("path", b"usr/bin/x"));
        data.extend(record("linkpath", b"a\n22 linkpath=/etc/evil\n"));
        let records = pax_records(&data).unwrap();
        assert_eq!(
            records,
            vec![
                (&b"SCHILY.xattr.security.capability"[..], &capability[..]),
                (&b"path"[..], &b"usr/bin/x"[..]),
                (&b"linkpath"[..], &b"a\n22 linkpath=/etc/evil\n"[..]),
            ]
        );
    }

    #[test]
    fn malformed_pax_records_are_refused() {
        assert!(pax_records(b"").unwrap().is_empty());
        for bad in [
            &b"11 path=a\n"[..], // length beyond the data
            b"7 path=a\n",       // length too short: no newline at its end
            b"x path=a\n",       // not a number
            b"10 patha.\n",      // no '='
            b"6 =ab\n",          // empty keyword
            b"3 \n",             // length covers only itself
            b"99999999999999999999999 a=b\n",
            b"18446744073709551617 a=b\n",
        ] {
            assert!(
                pax_records(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn decimal_numbers() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"1 "), None);
    }
}
