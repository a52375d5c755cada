//! Decoding of the data that common commands return (INQUIRY, READ CAPACITY, ...).
//!
//! Every decoder takes the bytes the device returned (the data-in buffer cut
//! to the length actually transferred, or the whole buffer) and never panics:
//! a buffer too short for what it must hold gives
//! [`ResponseError::TooShort`], which says how many bytes were needed so the
//! command can be sent again with a larger allocation length.
//!
//! ```
//! use sgmap::response::Capacity;
//!
//! let data = [0, 0, 0x03, 0xff, 0, 0, 0x02, 0]; // last LBA 1023, 512-byte blocks
//! let cap = Capacity::parse_10(&data).unwrap();
//! assert_eq!((cap.blocks, cap.block_size, cap.bytes()), (1024, 512, 512 * 1024));
//! ```

/// Why returned data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The buffer is shorter than the data must be.
    #[error(
        "{what} needs at least {needed} bytes but only {got} were given: send the command again \
         with an allocation length of at least {needed} and pass all the bytes transferred"
    )]
    TooShort {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes it needs.
        needed: usize,
        /// How many bytes were given.
        got: usize,
    },
    /// The data is a different VPD page from the one being decoded.
    #[error(
        "expected VPD page {expected:#04x} but the data is page {found:#04x}: ask for page \
         {expected:#04x} (INQUIRY with EVPD) or use the decoder for page {found:#04x}"
    )]
    WrongPage {
        /// The page code the decoder handles.
        expected: u8,
        /// The page code in byte 1 of the data.
        found: u8,
    },
    /// READ CAPACITY(10) returned the last LBA 0xffff_ffff: the capacity does
    /// not fit in its 32-bit field.
    #[error(
        "the device has more logical blocks than READ CAPACITY(10) can report: send READ \
         CAPACITY(16) and decode it with Capacity::parse_16"
    )]
    NeedsReadCapacity16 {
        /// The block length READ CAPACITY(10) did report.
        block_size: u32,
    },
    /// The data holds a value that cannot be right.
    #[error("the device returned impossible data: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The bytes `start..start + N` of `bytes`, if present.
fn array<const N: usize>(bytes: &[u8], start: usize) -> Option<[u8; N]> {
    bytes
        .get(start..start.checked_add(N)?)
        .and_then(|s| s.try_into().ok())
}

fn be16(bytes: &[u8], start: usize) -> Option<u16> {
    array(bytes, start).map(u16::from_be_bytes)
}

fn be32(bytes: &[u8], start: usize) -> Option<u32> {
    array(bytes, start).map(u32::from_be_bytes)
}

fn be64(bytes: &[u8], start: usize) -> Option<u64> {
    array(bytes, start).map(u64::from_be_bytes)
}

/// Fails with [`ResponseError::TooShort`] unless `bytes` has `needed` bytes.
fn need(what: &'static str, bytes: &[u8], needed: usize) -> Result<(), ResponseError> {
    if bytes.len() < needed {
        Err(ResponseError::TooShort {
            what,
            needed,
            got: bytes.len(),
        })
    } else {
        Ok(())
    }
}

/// Turns an ASCII field into a `String`: leading and trailing spaces and NULs
/// (the padding devices use) are removed, and any other byte outside printable
/// ASCII (0x20..=0x7e) becomes `?`.
fn ascii_field(bytes: &[u8]) -> String {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = bytes.iter().position(|b| !is_pad(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |i| i + 1);
    bytes
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|&b| {
            if (0x20..=0x7e).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// Standard INQUIRY data (SPC-4 6.4.2), the fields up to the product revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    /// Peripheral qualifier (byte 0, bits 7-5): 0 = a device of this type is
    /// (or may be) connected, 1 = supported but not connected, 3 = no logical
    /// unit here.
    pub peripheral_qualifier: u8,
    /// Peripheral device type (byte 0, bits 4-0), e.g. 0 for a disk
    /// (`sgmap_sys::TYPE_DISK`).
    pub device_type: u8,
    /// Removable medium (RMB, byte 1 bit 7).
    pub removable: bool,
    /// The SPC version the device claims (byte 2; 6 = SPC-4, 7 = SPC-5).
    pub version: u8,
    /// Response data format (byte 3, bits 3-0); 2 for current devices.
    pub response_data_format: u8,
    /// T10 vendor identification (bytes 8-15), trimmed, non-printables as `?`.
    pub vendor: String,
    /// Product identification (bytes 16-31), trimmed, non-printables as `?`.
    pub product: String,
    /// Product revision level (bytes 32-35), trimmed, non-printables as `?`.
    pub revision: String,
}

impl Inquiry {
    /// The number of bytes [`Inquiry::parse`] needs (and a good allocation
    /// length for `Cdb::inquiry`).
    pub const MIN_LEN: usize = 36;

    /// Decodes standard INQUIRY data; needs at least 36 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Inquiry, ResponseError> {
        need("standard INQUIRY data", bytes, Inquiry::MIN_LEN)?;
        let field = |range: std::ops::Range<usize>| ascii_field(bytes.get(range).unwrap_or(&[]));
        let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
        Ok(Inquiry {
            peripheral_qualifier: byte(0) >> 5,
            device_type: byte(0) & 0x1f,
            removable: byte(1) & 0x80 != 0,
            version: byte(2),
            response_data_format: byte(3) & 0x0f,
            vendor: field(8..16),
            product: field(16..32),
            revision: field(32..36),
        })
    }
}

/// The capacity of a block device, from READ CAPACITY(10) or (16).
///
/// The fields only READ CAPACITY(16) returns are zero / `None` / `false`
/// after [`Capacity::parse_10`], and after [`Capacity::parse_16`] when the
/// data was cut before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Number of logical blocks (the last LBA + 1).
    pub blocks: u64,
    /// Logical block length in bytes (never 0).
    pub block_size: u32,
    /// Logical blocks per physical block, as a power of two (byte 13, bits
    /// 3-0): 3 means 8 logical per physical (e.g. 512-byte logical blocks on
    /// a 4 KiB-sector disk).
    pub logical_blocks_per_physical_exponent: u8,
    /// The first LBA that is aligned to a physical block (bytes 14-15, 14
    /// bits).
    pub lowest_aligned_lba: u16,
    /// Protection information enabled (PROT_EN, byte 12 bit 0).
    pub protection_enabled: bool,
    /// The protection type when [`protection_enabled`](Capacity::protection_enabled)
    /// (1 to 8, i.e. P_TYPE + 1; T10 DIF types 1 to 3 exist today), else `None`.
    pub protection_type: Option<u8>,
    /// Logical block provisioning management enabled (LBPME, byte 14 bit 7):
    /// the device is thin provisioned and accepts UNMAP.
    pub thin_provisioned: bool,
    /// Unmapped blocks read as zeros (LBPRZ, byte 14 bit 6).
    pub unmapped_read_zeros: bool,
}

impl Capacity {
    /// The size of READ CAPACITY(10) data.
    pub const LEN_10: usize = 8;
    /// The fewest bytes [`Capacity::parse_16`] accepts (last LBA and block
    /// length).
    pub const MIN_LEN_16: usize = 12;
    /// The full size of READ CAPACITY(16) data (a good allocation length).
    pub const LEN_16: usize = 32;

    /// The capacity in bytes (`blocks * block_size`), saturating at
    /// `u64::MAX` (which no real device reaches).
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }

    /// Decodes READ CAPACITY(10) data (8 bytes).
    ///
    /// When the device reports the last LBA as 0xffff_ffff its capacity does
    /// not fit, and this returns [`ResponseError::NeedsReadCapacity16`]
    /// (carrying the block length) instead of a wrong capacity: send READ
    /// CAPACITY(16) and use [`Capacity::parse_16`]. A block length of 0 is
    /// [`ResponseError::Invalid`].
    pub fn parse_10(bytes: &[u8]) -> Result<Capacity, ResponseError> {
        let what = "READ CAPACITY(10) data";
        let (Some(last_lba), Some(block_size)) = (be32(bytes, 0), be32(bytes, 4)) else {
            return Err(ResponseError::TooShort {
                what,
                needed: Capacity::LEN_10,
                got: bytes.len(),
            });
        };
        if last_lba == u32::MAX {
            return Err(ResponseError::NeedsReadCapacity16 { block_size });
        }
        Capacity::new(u64::from(last_lba) + 1, block_size)
    }

    /// Decodes READ CAPACITY(16) data: needs at least 12 bytes (last LBA and
    /// block length); the protection, physical-block and provisioning fields
    /// (bytes 12-15) are decoded when present. A block length of 0, or a last
    /// LBA of `u64::MAX`, is [`ResponseError::Invalid`].
    pub fn parse_16(bytes: &[u8]) -> Result<Capacity, ResponseError> {
        let what = "READ CAPACITY(16) data";
        let (Some(last_lba), Some(block_size)) = (be64(bytes, 0), be32(bytes, 8)) else {
            return Err(ResponseError::TooShort {
                what,
                needed: Capacity::MIN_LEN_16,
                got: bytes.len(),
            });
        };
        let blocks = last_lba.checked_add(1).ok_or(ResponseError::Invalid {
            reason: "READ CAPACITY(16) reported the last LBA as 0xffffffffffffffff",
        })?;
        let mut cap = Capacity::new(blocks, block_size)?;
        if let Some(&b12) = bytes.get(12) {
            cap.protection_enabled = b12 & 0x01 != 0;
            cap.protection_type = cap.protection_enabled.then_some(((b12 >> 1) & 0x07) + 1);
        }
        if let Some(&b13) = bytes.get(13) {
            cap.logical_blocks_per_physical_exponent = b13 & 0x0f;
        }
        if let Some(b14_15) = be16(bytes, 14) {
            cap.thin_provisioned = b14_15 & 0x8000 != 0;
            cap.unmapped_read_zeros = b14_15 & 0x4000 != 0;
            cap.lowest_aligned_lba = b14_15 & 0x3fff;
        }
        Ok(cap)
    }

    fn new(blocks: u64, block_size: u32) -> Result<Capacity, ResponseError> {
        if block_size == 0 {
            return Err(ResponseError::Invalid {
                reason: "READ CAPACITY reported a logical block length of 0",
            });
        }
        Ok(Capacity {
            blocks,
            block_size,
            logical_blocks_per_physical_exponent: 0,
            lowest_aligned_lba: 0,
            protection_enabled: false,
            protection_type: None,
            thin_provisioned: false,
            unmapped_read_zeros: false,
        })
    }
}

/// Checks a VPD page's 4-byte header and returns the page body (bytes
/// `4..4 + page length`).
///
/// The whole page must be present when `whole` is set; otherwise up to
/// `max_body` bytes of it must be (for pages whose tail this crate does not
/// decode).
fn vpd_body<'a>(
    what: &'static str,
    page: u8,
    bytes: &'a [u8],
    max_body: Option<usize>,
) -> Result<&'a [u8], ResponseError> {
    need(what, bytes, 4)?;
    let found = bytes.get(1).copied().unwrap_or(0);
    if found != page {
        return Err(ResponseError::WrongPage {
            expected: page,
            found,
        });
    }
    let page_len = usize::from(be16(bytes, 2).unwrap_or(0));
    let body_len = max_body.map_or(page_len, |max| page_len.min(max));
    need(what, bytes, 4 + body_len)?;
    Ok(bytes.get(4..4 + body_len).unwrap_or(&[]))
}

/// Decodes the Supported VPD Pages page (0x00): the page codes the device
/// supports, in the order given (ascending, per SPC-4).
pub fn parse_supported_vpd_pages(bytes: &[u8]) -> Result<Vec<u8>, ResponseError> {
    vpd_body("the Supported VPD Pages page (0x00)", 0x00, bytes, None).map(<[u8]>::to_vec)
}

/// Decodes the Unit Serial Number page (0x80): the serial number, trimmed,
/// with non-printable bytes as `?`. An empty string when the device reports
/// none.
pub fn parse_unit_serial(bytes: &[u8]) -> Result<String, ResponseError> {
    vpd_body("the Unit Serial Number page (0x80)", 0x80, bytes, None).map(ascii_field)
}

/// The Block Limits page (0xb0, SBC-3 6.6.4).
///
/// Counts are in logical blocks. A field is `None` when the device leaves it
/// 0 ("not reported" / "no limit stated") or when the page is too short to
/// hold it (older devices return a 16-byte page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockLimits {
    /// Write Same Non-Zero (WSNZ, byte 4 bit 0): WRITE SAME with 0 blocks
    /// (meaning "to the end") is refused.
    pub write_same_non_zero: bool,
    /// Maximum COMPARE AND WRITE length (byte 5); `None`: not supported.
    pub max_compare_and_write_length: Option<u8>,
    /// Optimal transfer length granularity (bytes 6-7).
    pub optimal_transfer_length_granularity: Option<u16>,
    /// Maximum transfer length of one command (bytes 8-11): larger
    /// transfers must be split.
    pub max_transfer_length: Option<u32>,
    /// Optimal transfer length (bytes 12-15).
    pub optimal_transfer_length: Option<u32>,
    /// Maximum prefetch length (bytes 16-19).
    pub max_prefetch_length: Option<u32>,
    /// Maximum UNMAP LBA count (bytes 20-23); `Some(0xffff_ffff)` means no
    /// limit; `None`: UNMAP not supported.
    pub max_unmap_lba_count: Option<u32>,
    /// Maximum UNMAP block descriptor count (bytes 24-27);
    /// `Some(0xffff_ffff)` means no limit; `None`: UNMAP not supported.
    pub max_unmap_block_descriptor_count: Option<u32>,
    /// Optimal unmap granularity (bytes 28-31).
    pub optimal_unmap_granularity: Option<u32>,
    /// Unmap granularity alignment (bytes 32-35, 31 bits), present only when
    /// the UGAVALID bit is set.
    pub unmap_granularity_alignment: Option<u32>,
    /// Maximum WRITE SAME length (bytes 36-43).
    pub max_write_same_length: Option<u64>,
}

impl BlockLimits {
    /// The body size (after the 4-byte header) of the fields decoded here.
    const BODY_LEN: usize = 40;
    /// The full page size in SBC-3 and later (a good allocation length).
    pub const LEN: usize = 64;

    /// Decodes the Block Limits page (0xb0).
    ///
    /// Needs the 4-byte header and every decoded field the page length says
    /// is there (up to byte 43), so at most 44 bytes; anything past byte 43
    /// is ignored.
    pub fn parse(bytes: &[u8]) -> Result<BlockLimits, ResponseError> {
        let body = vpd_body(
            "the Block Limits page (0xb0)",
            0xb0,
            bytes,
            Some(BlockLimits::BODY_LEN),
        )?;
        // Offsets below are within the page, as in SBC; the body starts at 4.
        let u8_at = |i: usize| body.get(i - 4).copied().filter(|&v| v != 0);
        let u16_at = |i: usize| be16(body, i - 4).filter(|&v| v != 0);
        let u32_at = |i: usize| be32(body, i - 4).filter(|&v| v != 0);
        let uga = be32(body, 28).filter(|&v| v & 0x8000_0000 != 0);
        Ok(BlockLimits {
            write_same_non_zero: body.first().is_some_and(|&b| b & 0x01 != 0),
            max_compare_and_write_length: u8_at(5),
            optimal_transfer_length_granularity: u16_at(6),
            max_transfer_length: u32_at(8),
            optimal_transfer_length: u32_at(12),
            max_prefetch_length: u32_at(16),
            max_unmap_lba_count: u32_at(20),
            max_unmap_block_descriptor_count: u32_at(24),
            optimal_unmap_granularity: u32_at(28),
            unmap_granularity_alignment: uga.map(|v| v & 0x7fff_ffff),
            max_write_same_length: be64(body, 32).filter(|&v| v != 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard INQUIRY data as scsi_debug returns it (first 36 bytes).
    fn scsi_debug_inquiry() -> Vec<u8> {
        let mut d = vec![0x00, 0x00, 0x07, 0x02, 0x5b, 0x00, 0x00, 0x02];
        d.extend_from_slice(b"Linux   ");
        d.extend_from_slice(b"scsi_debug      ");
        d.extend_from_slice(b"0191");
        assert_eq!(d.len(), 36);
        d
    }

    #[test]
    fn inquiry_scsi_debug() {
        let inq = Inquiry::parse(&scsi_debug_inquiry()).unwrap();
        assert_eq!(
            inq,
            Inquiry {
                peripheral_qualifier: 0,
                device_type: 0,
                removable: false,
                version: 7,
                response_data_format: 2,
                vendor: "Linux".into(),
                product: "scsi_debug".into(),
                revision: "0191".into(),
            }
        );
    }

    #[test]
    fn inquiry_bits_and_dirty_strings() {
        let mut d = scsi_debug_inquiry();
        d[0] = 0x65; // qualifier 3, type 5
        d[1] = 0x80; // removable
        d[3] = 0x12; // HISUP + format 2
        d[8..16].copy_from_slice(b" AB\x01C\0\0\0");
        d[16..32].copy_from_slice(b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        d[32..36].copy_from_slice(b"1\xff2 ");
        d.extend_from_slice(&[0xee; 60]); // vendor-specific tail is ignored
        let inq = Inquiry::parse(&d).unwrap();
        assert_eq!(inq.peripheral_qualifier, 3);
        assert_eq!(inq.device_type, 5);
        assert!(inq.removable);
        assert_eq!(inq.response_data_format, 2);
        assert_eq!(inq.vendor, "AB?C");
        assert_eq!(inq.product, "");
        assert_eq!(inq.revision, "1?2");
    }

    #[test]
    fn inquiry_truncated() {
        let d = scsi_debug_inquiry();
        for n in 0..36 {
            assert_eq!(
                Inquiry::parse(&d[..n]),
                Err(ResponseError::TooShort {
                    what: "standard INQUIRY data",
                    needed: 36,
                    got: n
                })
            );
        }
    }

    #[test]
    fn capacity_10() {
        // 256 MiB of 512-byte blocks: last LBA 524287.
        let d = [0x00, 0x07, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00];
        let c = Capacity::parse_10(&d).unwrap();
        assert_eq!(c.blocks, 524_288);
        assert_eq!(c.block_size, 512);
        assert_eq!(c.bytes(), 256 << 20);
        assert_eq!(c.protection_type, None);
        assert_eq!(c.logical_blocks_per_physical_exponent, 0);
        // Trailing bytes are ignored.
        assert_eq!(Capacity::parse_10(&[&d[..], &[9, 9]].concat()), Ok(c));
    }

    #[test]
    fn capacity_10_largest_and_overflow_marker() {
        let d = [0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x10, 0x00];
        let c = Capacity::parse_10(&d).unwrap();
        assert_eq!(c.blocks, 0xffff_ffff);
        assert_eq!(c.block_size, 4096);
        let d = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00];
        let e = Capacity::parse_10(&d).unwrap_err();
        assert_eq!(e, ResponseError::NeedsReadCapacity16 { block_size: 512 });
        assert!(e.to_string().contains("send READ CAPACITY(16)"));
    }

    #[test]
    fn capacity_zero_block_size() {
        assert!(matches!(
            Capacity::parse_10(&[0, 0, 0, 1, 0, 0, 0, 0]),
            Err(ResponseError::Invalid { .. })
        ));
        assert!(matches!(
            Capacity::parse_16(&[0; 32]),
            Err(ResponseError::Invalid { .. })
        ));
    }

    #[test]
    fn capacity_10_truncated() {
        let d = [0x00, 0x07, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00];
        for n in 0..8 {
            assert_eq!(
                Capacity::parse_10(&d[..n]),
                Err(ResponseError::TooShort {
                    what: "READ CAPACITY(10) data",
                    needed: 8,
                    got: n
                })
            );
        }
    }

    fn capacity_16_data() -> [u8; 32] {
        let mut d = [0u8; 32];
        d[0..8].copy_from_slice(&0x0000_0001_ffff_ffffu64.to_be_bytes());
        d[8..12].copy_from_slice(&512u32.to_be_bytes());
        d[12] = 0b0000_0011; // P_TYPE 1, PROT_EN: type 2
        d[13] = 0x53; // P_I_EXPONENT 5, exponent 3
        d[14] = 0xc0 | 0x01; // LBPME, LBPRZ, aligned LBA high bits 1
        d[15] = 0x02;
        d
    }

    #[test]
    fn capacity_16() {
        let c = Capacity::parse_16(&capacity_16_data()).unwrap();
        assert_eq!(
            c,
            Capacity {
                blocks: 0x2_0000_0000,
                block_size: 512,
                logical_blocks_per_physical_exponent: 3,
                lowest_aligned_lba: 0x0102,
                protection_enabled: true,
                protection_type: Some(2),
                thin_provisioned: true,
                unmapped_read_zeros: true,
            }
        );
        assert_eq!(c.bytes(), 0x2_0000_0000 * 512);
    }

    #[test]
    fn capacity_16_no_protection() {
        let mut d = capacity_16_data();
        d[12] = 0b0000_0110; // P_TYPE set but PROT_EN clear
        let c = Capacity::parse_16(&d).unwrap();
        assert!(!c.protection_enabled);
        assert_eq!(c.protection_type, None);
    }

    #[test]
    fn capacity_16_truncated() {
        let d = capacity_16_data();
        for n in 0..12 {
            assert_eq!(
                Capacity::parse_16(&d[..n]),
                Err(ResponseError::TooShort {
                    what: "READ CAPACITY(16) data",
                    needed: 12,
                    got: n
                })
            );
        }
        // 12 bytes: only the basic fields.
        let c = Capacity::parse_16(&d[..12]).unwrap();
        assert_eq!((c.blocks, c.block_size), (0x2_0000_0000, 512));
        assert_eq!(c.protection_type, None);
        assert_eq!(c.lowest_aligned_lba, 0);
        // 13: protection; 14: exponent; 15: still no byte 14-15 pair.
        let c = Capacity::parse_16(&d[..13]).unwrap();
        assert_eq!(c.protection_type, Some(2));
        assert_eq!(c.logical_blocks_per_physical_exponent, 0);
        let c = Capacity::parse_16(&d[..15]).unwrap();
        assert_eq!(c.logical_blocks_per_physical_exponent, 3);
        assert!(!c.thin_provisioned);
        for n in 12..=32 {
            assert!(Capacity::parse_16(&d[..n]).is_ok());
        }
    }

    #[test]
    fn capacity_16_extremes() {
        let mut d = [0u8; 32];
        d[0..8].copy_from_slice(&u64::MAX.to_be_bytes());
        d[8..12].copy_from_slice(&512u32.to_be_bytes());
        assert!(matches!(
            Capacity::parse_16(&d),
            Err(ResponseError::Invalid { .. })
        ));
        d[0..8].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        d[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        let c = Capacity::parse_16(&d).unwrap();
        assert_eq!(c.blocks, u64::MAX);
        assert_eq!(c.bytes(), u64::MAX); // saturates
    }

    #[test]
    fn supported_vpd_pages() {
        let d = [0x00, 0x00, 0x00, 0x05, 0x00, 0x80, 0x83, 0xb0, 0xb1];
        assert_eq!(
            parse_supported_vpd_pages(&d).unwrap(),
            vec![0x00, 0x80, 0x83, 0xb0, 0xb1]
        );
        // Extra bytes past the page length (a larger buffer) are ignored.
        let mut long = d.to_vec();
        long.extend_from_slice(&[0; 20]);
        assert_eq!(parse_supported_vpd_pages(&long).unwrap().len(), 5);
        for n in 0..d.len() {
            let needed = if n < 4 { 4 } else { 9 };
            assert_eq!(
                parse_supported_vpd_pages(&d[..n]),
                Err(ResponseError::TooShort {
                    what: "the Supported VPD Pages page (0x00)",
                    needed,
                    got: n
                })
            );
        }
        assert_eq!(
            parse_supported_vpd_pages(&[0, 0, 0, 0]).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn wrong_page() {
        let d = [0x00, 0x80, 0x00, 0x00];
        assert_eq!(
            parse_supported_vpd_pages(&d),
            Err(ResponseError::WrongPage {
                expected: 0x00,
                found: 0x80
            })
        );
        assert_eq!(
            BlockLimits::parse(&d),
            Err(ResponseError::WrongPage {
                expected: 0xb0,
                found: 0x80
            })
        );
        let e = parse_unit_serial(&[0, 0xb0, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("expected VPD page 0x80"));
    }

    #[test]
    fn unit_serial() {
        let mut d = vec![0x00, 0x80, 0x00, 0x0d];
        d.extend_from_slice(b"  SN12\x0734  \0\0");
        assert_eq!(d.len(), 17);
        assert_eq!(parse_unit_serial(&d).unwrap(), "SN12?34");
        assert_eq!(parse_unit_serial(&[0, 0x80, 0, 0]).unwrap(), "");
        for n in 0..d.len() {
            let needed = if n < 4 { 4 } else { 17 };
            assert_eq!(
                parse_unit_serial(&d[..n]),
                Err(ResponseError::TooShort {
                    what: "the Unit Serial Number page (0x80)",
                    needed,
                    got: n
                })
            );
        }
    }

    /// A full 64-byte Block Limits page with every field set.
    fn block_limits_data() -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[1] = 0xb0;
        d[3] = 0x3c;
        d[4] = 0x01;
        d[5] = 0x01;
        d[6..8].copy_from_slice(&8u16.to_be_bytes());
        d[8..12].copy_from_slice(&0x4000u32.to_be_bytes());
        d[12..16].copy_from_slice(&0x0400u32.to_be_bytes());
        d[16..20].copy_from_slice(&0x0800u32.to_be_bytes());
        d[20..24].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        d[24..28].copy_from_slice(&0x100u32.to_be_bytes());
        d[28..32].copy_from_slice(&8u32.to_be_bytes());
        d[32..36].copy_from_slice(&0x8000_0003u32.to_be_bytes());
        d[36..44].copy_from_slice(&0x40_0000u64.to_be_bytes());
        d[44..48].copy_from_slice(&0xdddd_ddddu32.to_be_bytes()); // atomic: ignored
        d
    }

    #[test]
    fn block_limits_full() {
        assert_eq!(
            BlockLimits::parse(&block_limits_data()).unwrap(),
            BlockLimits {
                write_same_non_zero: true,
                max_compare_and_write_length: Some(1),
                optimal_transfer_length_granularity: Some(8),
                max_transfer_length: Some(0x4000),
                optimal_transfer_length: Some(0x400),
                max_prefetch_length: Some(0x800),
                max_unmap_lba_count: Some(0xffff_ffff),
                max_unmap_block_descriptor_count: Some(0x100),
                optimal_unmap_granularity: Some(8),
                unmap_granularity_alignment: Some(3),
                max_write_same_length: Some(0x40_0000),
            }
        );
    }

    #[test]
    fn block_limits_zero_means_none() {
        let mut d = vec![0u8; 64];
        d[1] = 0xb0;
        d[3] = 0x3c;
        d[32..36].copy_from_slice(&0x0000_0003u32.to_be_bytes()); // UGAVALID clear
        assert_eq!(BlockLimits::parse(&d).unwrap(), BlockLimits::default());
    }

    #[test]
    fn block_limits_short_page() {
        // An older device's page: length 0x0c (up to the optimal transfer length).
        let full = block_limits_data();
        let mut d = full[..16].to_vec();
        d[3] = 0x0c;
        let bl = BlockLimits::parse(&d).unwrap();
        assert_eq!(bl.max_transfer_length, Some(0x4000));
        assert_eq!(bl.optimal_transfer_length, Some(0x400));
        assert_eq!(bl.max_prefetch_length, None);
        assert_eq!(bl.max_write_same_length, None);
    }

    #[test]
    fn block_limits_truncated() {
        let d = block_limits_data();
        for n in 0..d.len() {
            let r = BlockLimits::parse(&d[..n]);
            if n < 4 {
                assert_eq!(
                    r,
                    Err(ResponseError::TooShort {
                        what: "the Block Limits page (0xb0)",
                        needed: 4,
                        got: n
                    })
                );
            } else if n < 44 {
                assert_eq!(
                    r,
                    Err(ResponseError::TooShort {
                        what: "the Block Limits page (0xb0)",
                        needed: 44,
                        got: n
                    })
                );
            } else {
                assert_eq!(r, BlockLimits::parse(&d));
            }
        }
    }

    /// Every decoder on every prefix of odd data, and on arbitrary bytes:
    /// errors are fine, panics are not.
    #[test]
    fn no_panics_on_any_prefix() {
        let mut seed = 0x1234_5678u32;
        let mut noise = vec![0u8; 300];
        for b in noise.iter_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (seed >> 16) as u8;
        }
        let mut samples = vec![
            scsi_debug_inquiry(),
            capacity_16_data().to_vec(),
            block_limits_data(),
            noise.clone(),
            vec![0xff; 300],
        ];
        for page in [0x00u8, 0x80, 0xb0] {
            let mut d = noise.clone();
            d[1] = page;
            samples.push(d);
            let mut d = vec![0xffu8; 300];
            d[1] = page;
            samples.push(d);
        }
        for s in &samples {
            for n in 0..=s.len() {
                let p = &s[..n];
                let _ = Inquiry::parse(p);
                let _ = Capacity::parse_10(p);
                let _ = Capacity::parse_16(p);
                let _ = parse_supported_vpd_pages(p);
                let _ = parse_unit_serial(p);
                let _ = BlockLimits::parse(p);
            }
        }
    }

    #[test]
    fn too_short_message_says_how_much() {
        let e = Inquiry::parse(&[0; 5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "standard INQUIRY data needs at least 36 bytes but only 5 were given: send the command \
             again with an allocation length of at least 36 and pass all the bytes transferred"
        );
    }

    #[test]
    fn ascii_field_cleanup() {
        assert_eq!(ascii_field(b""), "");
        assert_eq!(ascii_field(b"    "), "");
        assert_eq!(ascii_field(b"\0 \0"), "");
        assert_eq!(ascii_field(b" a b "), "a b");
        assert_eq!(ascii_field(b"a\tb\x80"), "a?b?");
    }
}
