//! CDB building and validation.
//!
//! A [`Cdb`] is a SCSI command descriptor block of 6 to 32 bytes, stored inline
//! (no allocation). It comes either from one of the builders, whose bytes follow
//! SPC-4 and SBC-3 exactly, or from [`Cdb::new`], which checks a caller's raw
//! bytes against the length rules of the opcode's group code.
//!
//! ```
//! use sgmap::cdb::Cdb;
//!
//! let cdb = Cdb::read(0x1_0000_0000, 8).unwrap(); // LBA too large for READ(10)
//! assert_eq!(cdb.len(), 16);
//! assert_eq!(cdb.opcode(), 0x88);
//! ```

use sgmap_sys::{
    INQUIRY, MODE_SENSE_10, READ_10, READ_12, READ_16, READ_BUFFER, READ_CAPACITY, REQUEST_SENSE,
    SAI_READ_CAPACITY_16, SERVICE_ACTION_IN_16, SYNCHRONIZE_CACHE, TEST_UNIT_READY, WRITE_10,
    WRITE_12, WRITE_16, WRITE_BUFFER,
};

/// The shortest CDB the sg driver accepts (a group 0 command).
pub const MIN_CDB_LEN: usize = 6;
/// The longest CDB this crate handles (the sg driver refuses longer ones with EINVAL).
pub const MAX_CDB_LEN: usize = 32;

/// Opcode of a variable-length CDB (group 3), whose byte 7 gives the length.
const VARIABLE_LENGTH_OPCODE: u8 = 0x7f;
/// Largest value of a 24-bit CDB field.
const MAX_24_BIT: u32 = 0x00ff_ffff;
/// Largest MODE field of READ BUFFER / WRITE BUFFER (5 bits).
const MAX_BUFFER_MODE: u8 = 0x1f;
/// Largest page code of MODE SENSE (6 bits).
const MAX_MODE_PAGE: u8 = 0x3f;
/// The FUA (force unit access) bit in byte 1 of READ/WRITE(10/12/16).
const FUA_BIT: u8 = 0x08;
/// The EVPD bit in byte 1 of INQUIRY.
const EVPD_BIT: u8 = 0x01;
/// The DBD (disable block descriptors) bit in byte 1 of MODE SENSE(10).
const DBD_BIT: u8 = 0x08;

/// Why a CDB could not be built or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdbError {
    /// The byte string is shorter than 6 or longer than 32 bytes.
    #[error("a CDB has 6 to 32 bytes; this one has {len}: pass the whole CDB and nothing more")]
    BadLength {
        /// The length that was given.
        len: usize,
    },
    /// The length disagrees with the fixed length of the opcode's group code.
    #[error(
        "opcode {opcode:#04x} is in group {group}, whose CDBs have {expected} bytes; this one has \
         {len}: fix the opcode or the length"
    )]
    GroupLengthMismatch {
        /// The opcode (byte 0).
        opcode: u8,
        /// The group code (top 3 bits of the opcode).
        group: u8,
        /// The length every CDB of that group has.
        expected: usize,
        /// The length that was given.
        len: usize,
    },
    /// A variable-length CDB (opcode 0x7f) whose length is not 8 + its byte 7.
    #[error(
        "a variable-length CDB (opcode 0x7f) has 8 + byte 7 bytes; this one has {len} bytes but \
         byte 7 is {additional}: make byte 7 equal to the length minus 8"
    )]
    VariableLengthMismatch {
        /// The additional CDB length (byte 7).
        additional: u8,
        /// The length that was given.
        len: usize,
    },
    /// A variable-length CDB (opcode 0x7f) shorter than its 8-byte header.
    #[error(
        "a variable-length CDB (opcode 0x7f) has at least 8 bytes (byte 7 gives the rest); this \
         one has {len}"
    )]
    VariableLengthTooShort {
        /// The length that was given.
        len: usize,
    },
    /// A value does not fit the CDB field that carries it.
    #[error("{field} is {value}, but its CDB field holds at most {max}: use a smaller value or split the request")]
    FieldTooLarge {
        /// Which field (for example "READ BUFFER offset").
        field: &'static str,
        /// The value that was given.
        value: u64,
        /// The largest value the field can hold.
        max: u64,
    },
    /// [`Cdb::with_fua`] on a command that has no FUA bit.
    #[error(
        "opcode {opcode:#04x} has no FUA bit; only READ and WRITE (10, 12 and 16) take one: \
         set FUA on a read or write CDB"
    )]
    FuaNotApplicable {
        /// The opcode of the CDB.
        opcode: u8,
    },
    /// A block range whose last block lies past the last LBA a CDB can
    /// address (2^64 - 1): `lba + blocks - 1` does not fit 64 bits.
    #[error(
        "{blocks} blocks from LBA {lba} run past LBA {max}, the last one a command can address: \
         the range wraps; fix the LBA or the count",
        max = u64::MAX
    )]
    RangeWraps {
        /// The first LBA.
        lba: u64,
        /// The number of blocks.
        blocks: u64,
    },
}

/// Checks that the `blocks` blocks from `lba` end at an LBA: the last one,
/// `lba + blocks - 1`, must not pass 2^64 - 1. Zero blocks are always fine.
pub fn check_range(lba: u64, blocks: u64) -> Result<(), CdbError> {
    match blocks.checked_sub(1).map(|n| lba.checked_add(n)) {
        Some(None) => Err(CdbError::RangeWraps { lba, blocks }),
        _ => Ok(()),
    }
}

/// A SCSI command descriptor block (6 to 32 bytes), stored inline.
///
/// Bytes past [`len`](Cdb::len) are always zero, so the derived equality
/// compares exactly the command bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; MAX_CDB_LEN],
    len: u8,
}

/// The fixed CDB length of a group code, or `None` when the group has no
/// fixed length (group 3: reserved and variable length; groups 6 and 7: vendor
/// specific).
fn group_length(group: u8) -> Option<usize> {
    match group {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// Checks that `value` fits a field of at most `max`.
fn check_field(field: &'static str, value: u64, max: u64) -> Result<(), CdbError> {
    if value > max {
        Err(CdbError::FieldTooLarge { field, value, max })
    } else {
        Ok(())
    }
}

/// The low three bytes of `value`, big-endian (the caller checked the range).
fn be24(value: u32) -> [u8; 3] {
    let b = value.to_be_bytes();
    [b[1], b[2], b[3]]
}

impl Cdb {
    /// Builds a CDB from a fixed-size array (a builder; the length is known
    /// to be in range at compile time).
    fn fixed<const N: usize>(array: [u8; N]) -> Cdb {
        const { assert!(N >= MIN_CDB_LEN && N <= MAX_CDB_LEN) };
        let mut bytes = [0u8; MAX_CDB_LEN];
        for (dst, src) in bytes.iter_mut().zip(array) {
            *dst = src;
        }
        Cdb {
            bytes,
            len: N as u8,
        }
    }

    /// Accepts a raw CDB after checking its length.
    ///
    /// The rules: 6 to 32 bytes; when the opcode's group code (its top 3 bits)
    /// has a fixed length the CDB must have it (group 0: 6 bytes, groups 1 and
    /// 2: 10, group 4: 16, group 5: 12); group 3 and the vendor-specific
    /// groups 6 and 7 take any length in range, except that a variable-length
    /// CDB (opcode 0x7f) must be 8 + its byte 7 bytes long.
    pub fn new(bytes: &[u8]) -> Result<Cdb, CdbError> {
        let len = bytes.len();
        if !(MIN_CDB_LEN..=MAX_CDB_LEN).contains(&len) {
            return Err(CdbError::BadLength { len });
        }
        let opcode = bytes.first().copied().unwrap_or(0);
        let group = opcode >> 5;
        if let Some(expected) = group_length(group) {
            if expected != len {
                return Err(CdbError::GroupLengthMismatch {
                    opcode,
                    group,
                    expected,
                    len,
                });
            }
        }
        if opcode == VARIABLE_LENGTH_OPCODE {
            let additional = bytes
                .get(7)
                .copied()
                .ok_or(CdbError::VariableLengthTooShort { len })?;
            if usize::from(additional) + 8 != len {
                return Err(CdbError::VariableLengthMismatch { additional, len });
            }
        }
        let mut stored = [0u8; MAX_CDB_LEN];
        for (dst, src) in stored.iter_mut().zip(bytes) {
            *dst = *src;
        }
        Ok(Cdb {
            bytes: stored,
            // In range: checked against MAX_CDB_LEN (32) above.
            len: len as u8,
        })
    }

    /// The command bytes (exactly [`len`](Cdb::len) of them).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The CDB length in bytes (6 to 32).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always `false`: a CDB has at least 6 bytes. (Present because a type
    /// with `len` is expected to have it.)
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The operation code (byte 0).
    pub fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    /// The direction and number of logical blocks a READ or WRITE (6, 10,
    /// 12 or 16, and WRITE AND VERIFY) moves, from its transfer length
    /// field; `None` for any other command. READ(6) and WRITE(6) with a
    /// length of 0 move 256 blocks, as SBC says.
    ///
    /// ```
    /// use sgmap::{cdb::Cdb, Direction};
    ///
    /// assert_eq!(Cdb::read_10(0, 8).transfer_blocks(), Some((Direction::FromDevice, 8)));
    /// assert_eq!(Cdb::test_unit_ready().transfer_blocks(), None);
    /// ```
    pub fn transfer_blocks(&self) -> Option<(crate::Direction, u64)> {
        use crate::Direction::{FromDevice, ToDevice};
        let b = self.as_bytes();
        let be = |range: std::ops::Range<usize>| {
            b.get(range)
                .map(|f| f.iter().fold(0u64, |n, &x| n << 8 | u64::from(x)))
        };
        let (dir, field) = match self.opcode() {
            0x08 => (FromDevice, be(4..5).map(|n| if n == 0 { 256 } else { n })),
            0x0a => (ToDevice, be(4..5).map(|n| if n == 0 { 256 } else { n })),
            READ_10 => (FromDevice, be(7..9)),
            WRITE_10 | 0x2e => (ToDevice, be(7..9)),
            READ_12 => (FromDevice, be(6..10)),
            WRITE_12 | 0xae => (ToDevice, be(6..10)),
            READ_16 => (FromDevice, be(10..14)),
            WRITE_16 | 0x8e => (ToDevice, be(10..14)),
            _ => return None,
        };
        Some((dir, field?))
    }

    /// Whether the FUA (force unit access) bit, bit 3 of byte 1, is set on a
    /// READ or WRITE (10, 12 or 16). `false` for any other command.
    pub fn fua(&self) -> bool {
        has_fua_bit(self.opcode()) && self.bytes[1] & FUA_BIT != 0
    }

    /// Returns this READ or WRITE (10, 12 or 16) with the FUA bit (bit 3 of
    /// byte 1) set: a read then comes from the medium, not a cache, and a
    /// write completes only once it is on the medium.
    ///
    /// Fails with [`CdbError::FuaNotApplicable`] for any other opcode rather
    /// than changing a bit that means something else there.
    pub fn with_fua(self) -> Result<Cdb, CdbError> {
        let opcode = self.opcode();
        if !has_fua_bit(opcode) {
            return Err(CdbError::FuaNotApplicable { opcode });
        }
        let mut cdb = self;
        cdb.bytes[1] |= FUA_BIT;
        Ok(cdb)
    }

    /// TEST UNIT READY (6 bytes, opcode 0x00).
    pub fn test_unit_ready() -> Cdb {
        Cdb::fixed([TEST_UNIT_READY, 0, 0, 0, 0, 0])
    }

    /// REQUEST SENSE (6 bytes, opcode 0x03) asking for fixed-format sense data
    /// (DESC = 0) of up to `alloc_len` bytes.
    pub fn request_sense(alloc_len: u8) -> Cdb {
        Cdb::fixed([REQUEST_SENSE, 0, 0, 0, alloc_len, 0])
    }

    /// INQUIRY (6 bytes, opcode 0x12) for the standard data, up to `alloc_len`
    /// bytes (36 hold everything [`crate::response::Inquiry`] decodes).
    pub fn inquiry(alloc_len: u16) -> Cdb {
        let [hi, lo] = alloc_len.to_be_bytes();
        Cdb::fixed([INQUIRY, 0, 0, hi, lo, 0])
    }

    /// INQUIRY (6 bytes, opcode 0x12) with EVPD set, for vital product data
    /// page `page`, up to `alloc_len` bytes.
    pub fn inquiry_vpd(page: u8, alloc_len: u16) -> Cdb {
        let [hi, lo] = alloc_len.to_be_bytes();
        Cdb::fixed([INQUIRY, EVPD_BIT, page, hi, lo, 0])
    }

    /// READ CAPACITY(10) (10 bytes, opcode 0x25); the device returns 8 bytes.
    pub fn read_capacity_10() -> Cdb {
        Cdb::fixed([READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// READ CAPACITY(16) (16 bytes, opcode 0x9e, service action 0x10), up to
    /// `alloc_len` bytes (32 hold the whole parameter data).
    pub fn read_capacity_16(alloc_len: u32) -> Cdb {
        let mut b = [0u8; 16];
        b[0] = SERVICE_ACTION_IN_16;
        b[1] = SAI_READ_CAPACITY_16;
        b[10..14].copy_from_slice(&alloc_len.to_be_bytes());
        Cdb::fixed(b)
    }

    /// READ(10) (10 bytes, opcode 0x28) of `blocks` logical blocks from `lba`.
    /// Zero blocks is legal and transfers nothing.
    pub fn read_10(lba: u32, blocks: u16) -> Cdb {
        Cdb::rw_10(READ_10, lba, blocks)
    }

    /// WRITE(10) (10 bytes, opcode 0x2a) of `blocks` logical blocks at `lba`.
    /// Zero blocks is legal and transfers nothing.
    pub fn write_10(lba: u32, blocks: u16) -> Cdb {
        Cdb::rw_10(WRITE_10, lba, blocks)
    }

    /// READ(16) (16 bytes, opcode 0x88) of `blocks` logical blocks from `lba`.
    /// Zero blocks is legal and transfers nothing. Fails with
    /// [`CdbError::RangeWraps`] when the range runs past LBA 2^64 - 1.
    pub fn read_16(lba: u64, blocks: u32) -> Result<Cdb, CdbError> {
        check_range(lba, blocks.into())?;
        Ok(Cdb::rw_16(READ_16, lba, blocks))
    }

    /// WRITE(16) (16 bytes, opcode 0x8a) of `blocks` logical blocks at `lba`.
    /// Zero blocks is legal and transfers nothing. Fails with
    /// [`CdbError::RangeWraps`] when the range runs past LBA 2^64 - 1.
    pub fn write_16(lba: u64, blocks: u32) -> Result<Cdb, CdbError> {
        check_range(lba, blocks.into())?;
        Ok(Cdb::rw_16(WRITE_16, lba, blocks))
    }

    /// READ of `blocks` logical blocks from `lba` in the shortest form that
    /// holds them: READ(10) when `lba <= u32::MAX` and `blocks <= u16::MAX`,
    /// READ(16) otherwise. Fails with [`CdbError::RangeWraps`] when the
    /// range runs past LBA 2^64 - 1.
    pub fn read(lba: u64, blocks: u32) -> Result<Cdb, CdbError> {
        match (u32::try_from(lba), u16::try_from(blocks)) {
            (Ok(lba), Ok(blocks)) => Ok(Cdb::read_10(lba, blocks)),
            _ => Cdb::read_16(lba, blocks),
        }
    }

    /// WRITE of `blocks` logical blocks at `lba` in the shortest form that
    /// holds them: WRITE(10) when `lba <= u32::MAX` and `blocks <= u16::MAX`,
    /// WRITE(16) otherwise. Fails with [`CdbError::RangeWraps`] when the
    /// range runs past LBA 2^64 - 1.
    pub fn write(lba: u64, blocks: u32) -> Result<Cdb, CdbError> {
        match (u32::try_from(lba), u16::try_from(blocks)) {
            (Ok(lba), Ok(blocks)) => Ok(Cdb::write_10(lba, blocks)),
            _ => Cdb::write_16(lba, blocks),
        }
    }

    /// SYNCHRONIZE CACHE(10) (10 bytes, opcode 0x35) of `blocks` logical
    /// blocks from `lba`, without IMMED (completes when the data is on the
    /// medium). `blocks == 0` means "from `lba` to the end of the medium".
    pub fn synchronize_cache_10(lba: u32, blocks: u16) -> Cdb {
        let mut b = [0u8; 10];
        b[0] = SYNCHRONIZE_CACHE;
        b[2..6].copy_from_slice(&lba.to_be_bytes());
        b[7..9].copy_from_slice(&blocks.to_be_bytes());
        Cdb::fixed(b)
    }

    /// MODE SENSE(10) (10 bytes, opcode 0x5a) for the current values (page
    /// control 0) of mode page `page` (0 to 0x3f; 0x3f means all pages),
    /// subpage `subpage` (0xff means all subpages), up to `alloc_len` bytes.
    /// `dbd` set asks the device to leave out block descriptors.
    ///
    /// Fails with [`CdbError::FieldTooLarge`] when `page` does not fit the
    /// 6-bit page code field.
    pub fn mode_sense_10(
        page: u8,
        subpage: u8,
        alloc_len: u16,
        dbd: bool,
    ) -> Result<Cdb, CdbError> {
        check_field("MODE SENSE page code", page.into(), MAX_MODE_PAGE.into())?;
        let mut b = [0u8; 10];
        b[0] = MODE_SENSE_10;
        b[1] = if dbd { DBD_BIT } else { 0 };
        b[2] = page; // page control (bits 7-6) = 0: current values
        b[3] = subpage;
        b[7..9].copy_from_slice(&alloc_len.to_be_bytes());
        Ok(Cdb::fixed(b))
    }

    /// READ BUFFER(10) (10 bytes, opcode 0x3c) in mode `mode` (5 bits) from
    /// buffer `buffer_id`, starting at `offset` (24 bits), up to `alloc_len`
    /// bytes (24 bits).
    ///
    /// Fails with [`CdbError::FieldTooLarge`] when a value does not fit its
    /// field (`mode > 0x1f`, `offset` or `alloc_len > 0xff_ffff`).
    pub fn read_buffer(
        mode: u8,
        buffer_id: u8,
        offset: u32,
        alloc_len: u32,
    ) -> Result<Cdb, CdbError> {
        Cdb::buffer(
            READ_BUFFER,
            [
                "READ BUFFER mode",
                "READ BUFFER offset",
                "READ BUFFER allocation length",
            ],
            mode,
            buffer_id,
            offset,
            alloc_len,
        )
    }

    /// WRITE BUFFER (10 bytes, opcode 0x3b) in mode `mode` (5 bits) to buffer
    /// `buffer_id`, starting at `offset` (24 bits), sending `len` bytes
    /// (parameter list length, 24 bits).
    ///
    /// Fails with [`CdbError::FieldTooLarge`] when a value does not fit its
    /// field (`mode > 0x1f`, `offset` or `len > 0xff_ffff`).
    pub fn write_buffer(mode: u8, buffer_id: u8, offset: u32, len: u32) -> Result<Cdb, CdbError> {
        Cdb::buffer(
            WRITE_BUFFER,
            [
                "WRITE BUFFER mode",
                "WRITE BUFFER offset",
                "WRITE BUFFER parameter list length",
            ],
            mode,
            buffer_id,
            offset,
            len,
        )
    }

    fn buffer(
        opcode: u8,
        names: [&'static str; 3],
        mode: u8,
        buffer_id: u8,
        offset: u32,
        len: u32,
    ) -> Result<Cdb, CdbError> {
        let [mode_name, offset_name, len_name] = names;
        check_field(mode_name, mode.into(), MAX_BUFFER_MODE.into())?;
        check_field(offset_name, offset.into(), MAX_24_BIT.into())?;
        check_field(len_name, len.into(), MAX_24_BIT.into())?;
        let mut b = [0u8; 10];
        b[0] = opcode;
        b[1] = mode;
        b[2] = buffer_id;
        b[3..6].copy_from_slice(&be24(offset));
        b[6..9].copy_from_slice(&be24(len));
        Ok(Cdb::fixed(b))
    }

    fn rw_10(opcode: u8, lba: u32, blocks: u16) -> Cdb {
        let mut b = [0u8; 10];
        b[0] = opcode;
        b[2..6].copy_from_slice(&lba.to_be_bytes());
        b[7..9].copy_from_slice(&blocks.to_be_bytes());
        Cdb::fixed(b)
    }

    fn rw_16(opcode: u8, lba: u64, blocks: u32) -> Cdb {
        let mut b = [0u8; 16];
        b[0] = opcode;
        b[2..10].copy_from_slice(&lba.to_be_bytes());
        b[10..14].copy_from_slice(&blocks.to_be_bytes());
        Cdb::fixed(b)
    }
}

/// Whether `opcode` is a READ or WRITE with a FUA bit in byte 1.
fn has_fua_bit(opcode: u8) -> bool {
    matches!(
        opcode,
        READ_10 | WRITE_10 | READ_12 | WRITE_12 | READ_16 | WRITE_16
    )
}

impl AsRef<[u8]> for Cdb {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<&[u8]> for Cdb {
    type Error = CdbError;

    /// Same as [`Cdb::new`].
    fn try_from(bytes: &[u8]) -> Result<Cdb, CdbError> {
        Cdb::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ranges_past_the_last_lba_are_refused() {
        // The last block of a range is lba + blocks - 1: it must be an LBA.
        assert!(
            Cdb::read(u64::MAX, 2).is_err(),
            "READ(16) at 2^64-1 for 2 blocks"
        );
        assert!(Cdb::write(u64::MAX, 2).is_err());
        assert!(Cdb::read(u64::MAX - 9, 11).is_err());
        assert!(Cdb::read(1, u32::MAX).is_ok());
        assert!(Cdb::read(u64::MAX - u64::from(u32::MAX) + 2, u32::MAX).is_err());
        assert!(Cdb::read(u64::MAX - u64::from(u32::MAX) + 1, u32::MAX).is_ok());
        // Up to the very last LBA, and zero blocks anywhere, are fine.
        assert!(Cdb::read(u64::MAX, 1).is_ok());
        assert!(Cdb::write(u64::MAX - 9, 10).is_ok());
        assert!(Cdb::read(u64::MAX, 0).is_ok());
        let e = Cdb::read(u64::MAX, 2).unwrap_err().to_string();
        assert!(
            e.contains("18446744073709551615") && e.contains("2 blocks"),
            "{e}"
        );
    }

    #[test]
    fn test_unit_ready_bytes() {
        assert_eq!(Cdb::test_unit_ready().as_bytes(), &[0u8; 6]);
    }

    #[test]
    fn request_sense_bytes() {
        assert_eq!(Cdb::request_sense(252).as_bytes(), &[0x03, 0, 0, 0, 252, 0]);
    }

    #[test]
    fn inquiry_bytes() {
        assert_eq!(Cdb::inquiry(36).as_bytes(), &[0x12, 0, 0, 0, 36, 0]);
        assert_eq!(
            Cdb::inquiry(0x1234).as_bytes(),
            &[0x12, 0, 0, 0x12, 0x34, 0]
        );
    }

    #[test]
    fn inquiry_vpd_bytes() {
        assert_eq!(
            Cdb::inquiry_vpd(0xb0, 0x0140).as_bytes(),
            &[0x12, 0x01, 0xb0, 0x01, 0x40, 0]
        );
        assert_eq!(
            Cdb::inquiry_vpd(0x00, 255).as_bytes(),
            &[0x12, 0x01, 0x00, 0x00, 0xff, 0]
        );
    }

    #[test]
    fn read_capacity_10_bytes() {
        assert_eq!(
            Cdb::read_capacity_10().as_bytes(),
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn read_capacity_16_bytes() {
        assert_eq!(
            Cdb::read_capacity_16(32).as_bytes(),
            &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
        );
        assert_eq!(
            Cdb::read_capacity_16(0x0102_0304).as_bytes(),
            &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0]
        );
    }

    #[test]
    fn read_10_bytes() {
        assert_eq!(
            Cdb::read_10(0x1234_5678, 0x9abc).as_bytes(),
            &[0x28, 0, 0x12, 0x34, 0x56, 0x78, 0, 0x9a, 0xbc, 0]
        );
    }

    #[test]
    fn write_10_bytes() {
        assert_eq!(
            Cdb::write_10(0xdead_beef, 1).as_bytes(),
            &[0x2a, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 1, 0]
        );
    }

    #[test]
    fn read_16_bytes() {
        assert_eq!(
            Cdb::read_16(0x0102_0304_0506_0708, 0x0a0b_0c0d)
                .unwrap()
                .as_bytes(),
            &[0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0]
        );
    }

    #[test]
    fn write_16_bytes() {
        assert_eq!(
            Cdb::write_16(u64::MAX - u64::from(u32::MAX) + 1, u32::MAX)
                .unwrap()
                .as_bytes(),
            &[0x8a, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0]
        );
        assert_eq!(
            Cdb::write_16(u64::MAX, 1).unwrap().as_bytes(),
            &[0x8a, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn zero_blocks_allowed() {
        assert_eq!(
            Cdb::read(0, 0).unwrap().as_bytes(),
            &[0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Cdb::write(0x1_0000_0000, 0).unwrap().as_bytes(),
            &[0x8a, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn read_write_switch_on_lba() {
        let r = Cdb::read(0xffff_ffff, 1).unwrap();
        assert_eq!(r, Cdb::read_10(0xffff_ffff, 1));
        let r = Cdb::read(0x1_0000_0000, 1).unwrap();
        assert_eq!(r, Cdb::read_16(0x1_0000_0000, 1).unwrap());
        let w = Cdb::write(0xffff_ffff, 1).unwrap();
        assert_eq!(w, Cdb::write_10(0xffff_ffff, 1));
        let w = Cdb::write(0x1_0000_0000, 1).unwrap();
        assert_eq!(w, Cdb::write_16(0x1_0000_0000, 1).unwrap());
    }

    #[test]
    fn read_write_switch_on_blocks() {
        assert_eq!(Cdb::read(7, 0xffff).unwrap(), Cdb::read_10(7, 0xffff));
        assert_eq!(
            Cdb::read(7, 0x1_0000).unwrap(),
            Cdb::read_16(7, 0x1_0000).unwrap()
        );
        assert_eq!(Cdb::write(7, 0xffff).unwrap(), Cdb::write_10(7, 0xffff));
        assert_eq!(
            Cdb::write(7, 0x1_0000).unwrap(),
            Cdb::write_16(7, 0x1_0000).unwrap()
        );
        assert_eq!(Cdb::read(7, 0x1_0000).unwrap().len(), 16);
        assert_eq!(Cdb::read(7, 0xffff).unwrap().len(), 10);
    }

    #[test]
    fn synchronize_cache_10_bytes() {
        assert_eq!(
            Cdb::synchronize_cache_10(0x0102_0304, 0x0506).as_bytes(),
            &[0x35, 0, 1, 2, 3, 4, 0, 5, 6, 0]
        );
    }

    #[test]
    fn mode_sense_10_bytes() {
        assert_eq!(
            Cdb::mode_sense_10(0x08, 0, 0x00fc, false)
                .unwrap()
                .as_bytes(),
            &[0x5a, 0, 0x08, 0, 0, 0, 0, 0x00, 0xfc, 0]
        );
        assert_eq!(
            Cdb::mode_sense_10(0x3f, 0xff, 0x1000, true)
                .unwrap()
                .as_bytes(),
            &[0x5a, 0x08, 0x3f, 0xff, 0, 0, 0, 0x10, 0x00, 0]
        );
    }

    #[test]
    fn mode_sense_10_rejects_wide_page() {
        assert_eq!(
            Cdb::mode_sense_10(0x40, 0, 8, false),
            Err(CdbError::FieldTooLarge {
                field: "MODE SENSE page code",
                value: 0x40,
                max: 0x3f
            })
        );
    }

    #[test]
    fn read_buffer_bytes() {
        assert_eq!(
            Cdb::read_buffer(0x02, 0x07, 0x12_3456, 0xab_cdef)
                .unwrap()
                .as_bytes(),
            &[0x3c, 0x02, 0x07, 0x12, 0x34, 0x56, 0xab, 0xcd, 0xef, 0]
        );
        assert!(Cdb::read_buffer(0x1f, 0, 0xff_ffff, 0xff_ffff).is_ok());
    }

    #[test]
    fn read_buffer_rejects_wide_fields() {
        assert!(matches!(
            Cdb::read_buffer(0x20, 0, 0, 0),
            Err(CdbError::FieldTooLarge {
                value: 0x20,
                max: 0x1f,
                ..
            })
        ));
        assert!(matches!(
            Cdb::read_buffer(2, 0, 0x100_0000, 0),
            Err(CdbError::FieldTooLarge {
                field: "READ BUFFER offset",
                value: 0x100_0000,
                max: 0xff_ffff
            })
        ));
        assert!(matches!(
            Cdb::read_buffer(2, 0, 0, u32::MAX),
            Err(CdbError::FieldTooLarge {
                field: "READ BUFFER allocation length",
                ..
            })
        ));
    }

    #[test]
    fn write_buffer_bytes() {
        assert_eq!(
            Cdb::write_buffer(0x02, 0x01, 0x00_0200, 0x00_1000)
                .unwrap()
                .as_bytes(),
            &[0x3b, 0x02, 0x01, 0x00, 0x02, 0x00, 0x00, 0x10, 0x00, 0]
        );
    }

    #[test]
    fn write_buffer_rejects_wide_fields() {
        assert!(Cdb::write_buffer(0x20, 0, 0, 0).is_err());
        assert!(matches!(
            Cdb::write_buffer(2, 0, 0x100_0000, 0),
            Err(CdbError::FieldTooLarge {
                field: "WRITE BUFFER offset",
                ..
            })
        ));
        assert!(matches!(
            Cdb::write_buffer(2, 0, 0, 0x100_0000),
            Err(CdbError::FieldTooLarge {
                field: "WRITE BUFFER parameter list length",
                ..
            })
        ));
    }

    #[test]
    fn fua_sets_bit_3_of_byte_1() {
        let r = Cdb::read_10(1, 2).with_fua().unwrap();
        assert_eq!(r.as_bytes(), &[0x28, 0x08, 0, 0, 0, 1, 0, 0, 2, 0]);
        assert!(r.fua());
        assert!(!Cdb::read_10(1, 2).fua());
        let w = Cdb::write_16(1, 2).unwrap().with_fua().unwrap();
        assert_eq!(
            w.as_bytes(),
            &[0x8a, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]
        );
        assert!(Cdb::write_10(0, 0).with_fua().unwrap().fua());
        assert!(Cdb::read_16(0, 0).unwrap().with_fua().unwrap().fua());
        // Idempotent.
        assert_eq!(r.with_fua().unwrap(), r);
    }

    #[test]
    fn fua_refused_elsewhere() {
        assert_eq!(
            Cdb::inquiry(36).with_fua(),
            Err(CdbError::FuaNotApplicable { opcode: 0x12 })
        );
        assert!(Cdb::synchronize_cache_10(0, 0).with_fua().is_err());
        // INQUIRY with EVPD has bit 0 of byte 1 set, never reported as FUA.
        assert!(!Cdb::inquiry_vpd(0x80, 0xff).fua());
    }

    #[test]
    fn new_rejects_bad_lengths() {
        assert_eq!(Cdb::new(&[]), Err(CdbError::BadLength { len: 0 }));
        assert_eq!(Cdb::new(&[0; 5]), Err(CdbError::BadLength { len: 5 }));
        assert_eq!(Cdb::new(&[0xc0; 33]), Err(CdbError::BadLength { len: 33 }));
        let e = Cdb::new(&[0; 40]).unwrap_err();
        assert_eq!(e, CdbError::BadLength { len: 40 });
        assert!(e
            .to_string()
            .contains("a CDB has 6 to 32 bytes; this one has 40"));
    }

    #[test]
    fn new_checks_group_lengths() {
        // (opcode, its fixed length) for groups 0, 1, 2, 4, 5.
        for (opcode, fixed) in [
            (0x00u8, 6usize),
            (0x28, 10),
            (0x5a, 10),
            (0x88, 16),
            (0xa8, 12),
        ] {
            for len in MIN_CDB_LEN..=MAX_CDB_LEN {
                let mut bytes = vec![0u8; len];
                bytes[0] = opcode;
                let r = Cdb::new(&bytes);
                if len == fixed {
                    let cdb = r.unwrap();
                    assert_eq!(cdb.as_bytes(), &bytes[..]);
                    assert_eq!(cdb.len(), len);
                    assert_eq!(cdb.opcode(), opcode);
                } else {
                    assert_eq!(
                        r,
                        Err(CdbError::GroupLengthMismatch {
                            opcode,
                            group: opcode >> 5,
                            expected: fixed,
                            len
                        })
                    );
                }
            }
        }
    }

    #[test]
    fn new_accepts_any_length_for_open_groups() {
        // Group 3 (other than 0x7f) and the vendor-specific groups 6 and 7.
        for opcode in [0x60u8, 0x7e, 0xc0, 0xdf, 0xe0, 0xff] {
            for len in MIN_CDB_LEN..=MAX_CDB_LEN {
                let mut bytes = vec![0xa5u8; len];
                bytes[0] = opcode;
                let cdb = Cdb::new(&bytes).unwrap();
                assert_eq!(cdb.as_bytes(), &bytes[..]);
            }
        }
    }

    #[test]
    fn new_checks_variable_length() {
        for len in MIN_CDB_LEN..=MAX_CDB_LEN {
            let mut bytes = vec![0u8; len];
            bytes[0] = 0x7f;
            if len < 8 {
                assert_eq!(
                    Cdb::new(&bytes),
                    Err(CdbError::VariableLengthTooShort { len })
                );
                continue;
            }
            bytes[7] = (len - 8) as u8;
            assert!(Cdb::new(&bytes).is_ok(), "len {len}");
            bytes[7] = (len - 7) as u8;
            assert_eq!(
                Cdb::new(&bytes),
                Err(CdbError::VariableLengthMismatch {
                    additional: (len - 7) as u8,
                    len
                })
            );
        }
        // The usual 32-byte form: additional length 0x18.
        let mut bytes = [0u8; 32];
        bytes[0] = 0x7f;
        bytes[7] = 0x18;
        assert_eq!(Cdb::new(&bytes).unwrap().len(), 32);
        bytes[7] = 0xff;
        assert!(Cdb::new(&bytes).is_err());
    }

    #[test]
    fn builders_pass_validation() {
        let all = [
            Cdb::test_unit_ready(),
            Cdb::request_sense(18),
            Cdb::inquiry(36),
            Cdb::inquiry_vpd(0x80, 255),
            Cdb::read_capacity_10(),
            Cdb::read_capacity_16(32),
            Cdb::read_10(1, 1),
            Cdb::write_10(1, 1),
            Cdb::read_16(1, 1).unwrap(),
            Cdb::write_16(1, 1).unwrap(),
            Cdb::synchronize_cache_10(0, 0),
            Cdb::mode_sense_10(0x3f, 0, 8, true).unwrap(),
            Cdb::read_buffer(2, 0, 0, 4).unwrap(),
            Cdb::write_buffer(2, 0, 0, 4).unwrap(),
            Cdb::read_10(1, 1).with_fua().unwrap(),
        ];
        for cdb in all {
            assert_eq!(Cdb::new(cdb.as_bytes()), Ok(cdb));
            assert_eq!(Cdb::try_from(cdb.as_ref()), Ok(cdb));
            assert!(!cdb.is_empty());
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = Cdb::new(&[0x28, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "opcode 0x28 is in group 1, whose CDBs have 10 bytes; this one has 6: fix the opcode or \
             the length"
        );
        let e = Cdb::read_buffer(2, 0, 0x100_0000, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "READ BUFFER offset is 16777216, but its CDB field holds at most 16777215: use a \
             smaller value or split the request"
        );
    }
}
