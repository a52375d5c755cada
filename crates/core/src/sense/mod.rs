//! Sense data decoding: fixed and descriptor formats, sense keys, ASC/ASCQ text.
//!
//! A device that ends a command with CHECK CONDITION returns sense data
//! describing why. [`Sense::parse`] decodes both layouts defined by SPC-4 and
//! SPC-5:
//!
//! * fixed format (response codes 70h current, 71h deferred), and
//! * descriptor format (response codes 72h current, 73h deferred), of which
//!   the information (00h), command-specific information (01h),
//!   sense-key-specific (02h), stream commands (04h) and block commands (05h)
//!   descriptors are understood; the rest are kept only in [`Sense::raw`].
//!
//! Decoding never panics: truncated buffers, additional-length fields that
//! claim more bytes than were transferred and descriptors that overrun the
//! data are all tolerated, and whatever lies outside the bytes actually
//! present is treated as absent.
//!
//! ```
//! use sgmap::sense::{Sense, SenseKey};
//!
//! let bytes = [
//!     0xf0, 0x00, 0x03, 0x00, 0x01, 0x23, 0x45, 0x0a, 0x00, 0x00, 0x00, 0x00,
//!     0x11, 0x00, 0x00, 0x00, 0x00, 0x00,
//! ];
//! let sense = Sense::parse(&bytes).unwrap();
//! assert_eq!(sense.key, SenseKey::MediumError);
//! assert_eq!(sense.information, Some(0x12345));
//! assert_eq!(
//!     sense.to_string(),
//!     "MEDIUM ERROR: Unrecovered read error (asc 0x11, ascq 0x00), information 0x12345"
//! );
//! ```

use core::fmt;

mod asc_table;

use asc_table::ASC_TABLE;

/// Largest amount of sense data SPC allows (and the most [`Sense`] keeps).
///
/// Input longer than this is truncated to its first `MAX_SENSE_LEN` bytes
/// before decoding.
pub const MAX_SENSE_LEN: usize = 252;

/// The SENSE KEY field: the general category of the condition (SPC table
/// "Sense key descriptions").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SenseKey {
    /// 0h: nothing to report (or only flags such as FILEMARK/EOM/ILI).
    NoSense = 0x0,
    /// 1h: the command completed after recovery action by the device.
    RecoveredError = 0x1,
    /// 2h: the logical unit cannot be accessed now.
    NotReady = 0x2,
    /// 3h: a non-recoverable error probably caused by a medium flaw.
    MediumError = 0x3,
    /// 4h: a non-recoverable hardware failure.
    HardwareError = 0x4,
    /// 5h: the command or its parameters were invalid.
    IllegalRequest = 0x5,
    /// 6h: a unit attention condition (reset, media change, ...) was reported.
    UnitAttention = 0x6,
    /// 7h: a write or read was refused because the block is protected.
    DataProtect = 0x7,
    /// 8h: blank medium or format-defined end-of-data was encountered.
    BlankCheck = 0x8,
    /// 9h: vendor specific condition.
    VendorSpecific = 0x9,
    /// Ah: an EXTENDED COPY (or similar) command was aborted.
    CopyAborted = 0xA,
    /// Bh: the device server aborted the command.
    AbortedCommand = 0xB,
    /// Ch: reserved (formerly EQUAL, now obsolete).
    Reserved0C = 0xC,
    /// Dh: a buffered device reached end-of-partition with data left over.
    VolumeOverflow = 0xD,
    /// Eh: source data did not match the data read from the medium.
    Miscompare = 0xE,
    /// Fh: the command completed; the sense data carries extra information.
    Completed = 0xF,
}

impl SenseKey {
    /// The sense key in the low nibble of `value` (the high nibble is ignored).
    pub const fn from_u8(value: u8) -> SenseKey {
        match value & 0x0F {
            0x0 => SenseKey::NoSense,
            0x1 => SenseKey::RecoveredError,
            0x2 => SenseKey::NotReady,
            0x3 => SenseKey::MediumError,
            0x4 => SenseKey::HardwareError,
            0x5 => SenseKey::IllegalRequest,
            0x6 => SenseKey::UnitAttention,
            0x7 => SenseKey::DataProtect,
            0x8 => SenseKey::BlankCheck,
            0x9 => SenseKey::VendorSpecific,
            0xA => SenseKey::CopyAborted,
            0xB => SenseKey::AbortedCommand,
            0xC => SenseKey::Reserved0C,
            0xD => SenseKey::VolumeOverflow,
            0xE => SenseKey::Miscompare,
            _ => SenseKey::Completed,
        }
    }

    /// The sense key's name as SPC spells it, e.g. `"MEDIUM ERROR"`.
    pub const fn name(self) -> &'static str {
        match self {
            SenseKey::NoSense => "NO SENSE",
            SenseKey::RecoveredError => "RECOVERED ERROR",
            SenseKey::NotReady => "NOT READY",
            SenseKey::MediumError => "MEDIUM ERROR",
            SenseKey::HardwareError => "HARDWARE ERROR",
            SenseKey::IllegalRequest => "ILLEGAL REQUEST",
            SenseKey::UnitAttention => "UNIT ATTENTION",
            SenseKey::DataProtect => "DATA PROTECT",
            SenseKey::BlankCheck => "BLANK CHECK",
            SenseKey::VendorSpecific => "VENDOR SPECIFIC",
            SenseKey::CopyAborted => "COPY ABORTED",
            SenseKey::AbortedCommand => "ABORTED COMMAND",
            SenseKey::Reserved0C => "RESERVED",
            SenseKey::VolumeOverflow => "VOLUME OVERFLOW",
            SenseKey::Miscompare => "MISCOMPARE",
            SenseKey::Completed => "COMPLETED",
        }
    }
}

impl fmt::Display for SenseKey {
    /// Writes [`SenseKey::name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of the two sense data layouts a [`Sense`] was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenseFormat {
    /// Fixed format: response code 70h (current) or 71h (deferred).
    Fixed,
    /// Descriptor format: response code 72h (current) or 73h (deferred).
    Descriptor,
}

/// The sense-key-specific field decoded as a FIELD POINTER (ILLEGAL REQUEST).
///
/// It locates the first invalid field in the CDB or in the parameter data the
/// command sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldPointer {
    /// `true` (C/D bit set): the bad field is in the CDB; `false`: it is in
    /// the parameter data sent to the device.
    pub in_cdb: bool,
    /// Byte offset of the bad field (its first byte).
    pub byte: u16,
    /// Bit (0..=7) of the bad field's most significant bit within `byte`,
    /// when the device reported one (BPV bit set).
    pub bit: Option<u8>,
}

/// Decoded sense data.
///
/// Built by [`Sense::parse`]; the decoded fields are public, the bytes it
/// was decoded from are available through [`Sense::raw`].
#[derive(Clone, PartialEq, Eq)]
pub struct Sense {
    /// Fixed or descriptor layout.
    pub format: SenseFormat,
    /// `true` for a current error (70h/72h), `false` for a deferred error
    /// (71h/73h) reported against an earlier command.
    pub current: bool,
    /// The sense key.
    pub key: SenseKey,
    /// ADDITIONAL SENSE CODE; 0 when the (fixed format) data is too short to
    /// hold it.
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER; 0 when the (fixed format) data is too
    /// short to hold it.
    pub ascq: u8,
    /// The INFORMATION field (often the first failing LBA), if valid.
    ///
    /// Fixed format: bytes 3..=6 when the VALID bit (byte 0 bit 7) is set.
    /// Descriptor format: the first information descriptor (type 00h) with
    /// its VALID bit set.
    pub information: Option<u64>,
    /// The COMMAND-SPECIFIC INFORMATION field, if present.
    ///
    /// Fixed format: bytes 8..=11 when the additional sense length covers
    /// them and they are not zero. Descriptor format: the first
    /// command-specific information descriptor (type 01h).
    pub command_specific: Option<u64>,
    /// The three SENSE KEY SPECIFIC bytes (SKSV bit included, in bit 7 of
    /// the first byte), present only when SKSV is set.
    ///
    /// Fixed format: bytes 15..=17 when the additional sense length covers
    /// them. Descriptor format: the first sense key specific descriptor
    /// (type 02h). See [`Sense::field_pointer`], [`Sense::progress`] and
    /// [`Sense::retry_count`] for decoded views.
    pub sense_key_specific: Option<[u8; 3]>,
    /// FILEMARK: a filemark or setmark was read (sequential-access devices).
    /// Fixed byte 2 bit 7, or the stream commands descriptor (04h).
    pub filemark: bool,
    /// EOM: end-of-medium or beginning-of-medium was reached.
    /// Fixed byte 2 bit 6, or the stream commands descriptor (04h).
    pub eom: bool,
    /// ILI: the requested logical block length did not match the medium's.
    /// Fixed byte 2 bit 5, or the stream (04h) or block (05h) commands
    /// descriptor.
    pub ili: bool,
    raw: [u8; MAX_SENSE_LEN],
    raw_len: u8,
}

impl fmt::Debug for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sense")
            .field("format", &self.format)
            .field("current", &self.current)
            .field("key", &self.key)
            .field("asc", &self.asc)
            .field("ascq", &self.ascq)
            .field("information", &self.information)
            .field("command_specific", &self.command_specific)
            .field("sense_key_specific", &self.sense_key_specific)
            .field("filemark", &self.filemark)
            .field("eom", &self.eom)
            .field("ili", &self.ili)
            .field("raw", &self.raw())
            .finish()
    }
}

/// Big-endian value of up to 8 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// The bytes of `b` that the ADDITIONAL SENSE LENGTH (byte 7) says are sense
/// data, bounded by what is actually present. Both formats keep that length
/// in byte 7; without it the whole buffer is used.
fn declared(b: &[u8]) -> &[u8] {
    match b.get(7) {
        Some(&additional) => {
            let end = b.len().min(8 + usize::from(additional));
            b.get(..end).unwrap_or(b)
        }
        None => b,
    }
}

/// Three SENSE KEY SPECIFIC bytes, if SKSV (bit 7 of the first) is set.
fn sks(bytes: Option<&[u8]>) -> Option<[u8; 3]> {
    match bytes {
        Some(&[a, b, c, ..]) if a & 0x80 != 0 => Some([a, b, c]),
        _ => None,
    }
}

impl Sense {
    /// Decodes sense data in fixed or descriptor format.
    ///
    /// `bytes` should be the sense bytes the device actually returned (for
    /// sg, the first `sb_len_wr` bytes of the sense buffer); anything beyond
    /// [`MAX_SENSE_LEN`] is ignored.
    ///
    /// Returns `None` if `bytes` is empty, the response code (byte 0, bits
    /// 6..0) is not 70h..=73h, or the data is too short to hold the sense
    /// key: fixed format needs 3 bytes (ASC and ASCQ, at bytes 12 and 13,
    /// read as 0 when absent), descriptor format needs 4. Fields beyond
    /// byte 7 are read only where both the buffer and the ADDITIONAL SENSE
    /// LENGTH cover them, except the fixed-format ASC/ASCQ, which are read
    /// whenever the buffer holds them (as Linux does, since some devices
    /// understate the additional length). Never panics.
    pub fn parse(bytes: &[u8]) -> Option<Sense> {
        let b = bytes.get(..MAX_SENSE_LEN).unwrap_or(bytes);
        let response_code = *b.first()? & 0x7F;
        let (format, current) = match response_code {
            0x70 => (SenseFormat::Fixed, true),
            0x71 => (SenseFormat::Fixed, false),
            0x72 => (SenseFormat::Descriptor, true),
            0x73 => (SenseFormat::Descriptor, false),
            _ => return None,
        };
        let mut sense = Sense {
            format,
            current,
            key: SenseKey::NoSense,
            asc: 0,
            ascq: 0,
            information: None,
            command_specific: None,
            sense_key_specific: None,
            filemark: false,
            eom: false,
            ili: false,
            raw: [0; MAX_SENSE_LEN],
            raw_len: 0,
        };
        match format {
            SenseFormat::Fixed => sense.decode_fixed(b)?,
            SenseFormat::Descriptor => sense.decode_descriptor(b)?,
        }
        // `b` holds at most MAX_SENSE_LEN (252) bytes, so this fits a u8.
        let len = b.len().min(MAX_SENSE_LEN);
        if let (Some(dst), Some(src)) = (sense.raw.get_mut(..len), b.get(..len)) {
            dst.copy_from_slice(src);
        }
        sense.raw_len = u8::try_from(len).unwrap_or(u8::MAX);
        Some(sense)
    }

    fn decode_fixed(&mut self, b: &[u8]) -> Option<()> {
        let flags = *b.get(2)?;
        self.key = SenseKey::from_u8(flags);
        self.filemark = flags & 0x80 != 0;
        self.eom = flags & 0x40 != 0;
        self.ili = flags & 0x20 != 0;
        let valid = b.first().is_some_and(|&b0| b0 & 0x80 != 0);
        if valid {
            self.information = b.get(3..7).map(be);
        }
        self.asc = b.get(12).copied().unwrap_or(0);
        self.ascq = b.get(13).copied().unwrap_or(0);
        let body = declared(b);
        self.command_specific = body.get(8..12).map(be).filter(|&v| v != 0);
        self.sense_key_specific = sks(body.get(15..18));
        Some(())
    }

    fn decode_descriptor(&mut self, b: &[u8]) -> Option<()> {
        self.key = SenseKey::from_u8(*b.get(1)?);
        self.asc = *b.get(2)?;
        self.ascq = *b.get(3)?;
        let body = declared(b);
        let mut pos = 8;
        // Each descriptor is a type byte, an additional length byte and that
        // many more bytes; stop at the first one that does not fit entirely.
        while let Some(&[_, additional]) = body.get(pos..pos + 2) {
            let len = 2 + usize::from(additional);
            let Some(desc) = body.get(pos..pos + len) else {
                break;
            };
            self.descriptor(desc);
            pos += len;
        }
        Some(())
    }

    /// Applies one complete descriptor; the first of each type wins.
    fn descriptor(&mut self, desc: &[u8]) {
        match desc {
            // Information: VALID in byte 2 bit 7, INFORMATION in bytes 4..=11.
            [0x00, _, flags, _, rest @ ..] if flags & 0x80 != 0 && self.information.is_none() => {
                self.information = rest.get(..8).map(be);
            }
            // Command-specific information: bytes 4..=11.
            [0x01, _, _, _, rest @ ..] if self.command_specific.is_none() => {
                self.command_specific = rest.get(..8).map(be);
            }
            // Sense key specific: bytes 4..=6, SKSV in byte 4 bit 7.
            [0x02, _, _, _, rest @ ..] if self.sense_key_specific.is_none() => {
                self.sense_key_specific = sks(Some(rest));
            }
            // Stream commands: FILEMARK, EOM, ILI in byte 3 bits 7, 6, 5.
            [0x04, _, _, flags, ..] => {
                self.filemark |= flags & 0x80 != 0;
                self.eom |= flags & 0x40 != 0;
                self.ili |= flags & 0x20 != 0;
            }
            // Block commands: ILI in byte 3 bit 5.
            [0x05, _, _, flags, ..] => {
                self.ili |= flags & 0x20 != 0;
            }
            _ => {}
        }
    }

    /// The sense bytes this was decoded from (at most [`MAX_SENSE_LEN`]),
    /// exactly as given to [`Sense::parse`], including any bytes beyond the
    /// additional sense length.
    pub fn raw(&self) -> &[u8] {
        self.raw
            .get(..usize::from(self.raw_len))
            .unwrap_or(&self.raw)
    }

    /// The RESPONSE CODE (70h..=73h), byte 0 without the VALID bit.
    pub fn response_code(&self) -> u8 {
        self.raw.first().map_or(0, |&b0| b0 & 0x7F)
    }

    /// The SPC description of this sense's ASC/ASCQ, see [`asc_text`].
    pub fn asc_text(&self) -> Option<&'static str> {
        asc_text(self.asc, self.ascq)
    }

    /// `true` if the sense key is UNIT ATTENTION.
    pub fn is_unit_attention(&self) -> bool {
        self.key == SenseKey::UnitAttention
    }

    /// `true` for UNIT ATTENTION with ASC 29h: power on, reset, bus device
    /// reset, internal reset, I_T nexus loss, ... (any ASCQ).
    pub fn is_power_on_or_reset(&self) -> bool {
        self.is_unit_attention() && self.asc == 0x29
    }

    /// `true` if the sense key is RECOVERED ERROR: the command succeeded
    /// after the device took recovery action.
    pub fn is_recovered(&self) -> bool {
        self.key == SenseKey::RecoveredError
    }

    /// The sense-key-specific bytes decoded as a field pointer, for ILLEGAL
    /// REQUEST sense with SKSV set.
    pub fn field_pointer(&self) -> Option<FieldPointer> {
        if self.key != SenseKey::IllegalRequest {
            return None;
        }
        let [b0, b1, b2] = self.sense_key_specific?;
        Some(FieldPointer {
            in_cdb: b0 & 0x40 != 0,
            byte: u16::from_be_bytes([b1, b2]),
            bit: (b0 & 0x08 != 0).then_some(b0 & 0x07),
        })
    }

    /// The PROGRESS INDICATION of a long operation (format, sanitize,
    /// self-test, ...) as a fraction of 65536, for NO SENSE or NOT READY
    /// sense with SKSV set.
    pub fn progress(&self) -> Option<u16> {
        match self.key {
            SenseKey::NoSense | SenseKey::NotReady => {
                let [_, hi, lo] = self.sense_key_specific?;
                Some(u16::from_be_bytes([hi, lo]))
            }
            _ => None,
        }
    }

    /// The ACTUAL RETRY COUNT, for RECOVERED ERROR, MEDIUM ERROR or
    /// HARDWARE ERROR sense with SKSV set.
    pub fn retry_count(&self) -> Option<u16> {
        match self.key {
            SenseKey::RecoveredError | SenseKey::MediumError | SenseKey::HardwareError => {
                let [_, hi, lo] = self.sense_key_specific?;
                Some(u16::from_be_bytes([hi, lo]))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Sense {
    /// One line, e.g.
    /// `MEDIUM ERROR: Unrecovered read error (asc 0x11, ascq 0x00), information 0x12345`.
    ///
    /// Deferred errors read `KEY (deferred): ...`. An ASC/ASCQ without known
    /// text is shown as `asc 0x.., ascq 0x..`, with `Vendor specific` (ASC
    /// 80h..=FFh) or `Vendor specific qualification` (ASCQ 80h..=FFh) in
    /// front when it falls in a vendor range. Then follow, when present, the
    /// information and command-specific fields, the decoded sense-key-specific
    /// field, and the FILEMARK, EOM and ILI flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key.name())?;
        if !self.current {
            f.write_str(" (deferred)")?;
        }
        let (asc, ascq) = (self.asc, self.ascq);
        if asc >= 0x80 {
            write!(f, ": Vendor specific (asc {asc:#04x}, ascq {ascq:#04x})")?;
        } else if let Some(text) = self.asc_text() {
            write!(f, ": {text} (asc {asc:#04x}, ascq {ascq:#04x})")?;
        } else if ascq >= 0x80 {
            write!(
                f,
                ": Vendor specific qualification (asc {asc:#04x}, ascq {ascq:#04x})"
            )?;
        } else {
            write!(f, ": asc {asc:#04x}, ascq {ascq:#04x}")?;
        }
        if let Some(info) = self.information {
            write!(f, ", information {info:#x}")?;
        }
        if let Some(cs) = self.command_specific {
            write!(f, ", command-specific information {cs:#x}")?;
        }
        if let Some(fp) = self.field_pointer() {
            let place = if fp.in_cdb { "CDB" } else { "parameter data" };
            write!(f, ", field pointer {place} byte {}", fp.byte)?;
            if let Some(bit) = fp.bit {
                write!(f, " bit {bit}")?;
            }
        }
        if let Some(p) = self.progress() {
            // Tenths of a percent, rounded down.
            let tenths = u32::from(p) * 1000 / 65536;
            write!(f, ", progress {}.{}%", tenths / 10, tenths % 10)?;
        }
        if let Some(n) = self.retry_count() {
            write!(f, ", actual retry count {n}")?;
        }
        for (set, name) in [
            (self.filemark, "filemark"),
            (self.eom, "EOM"),
            (self.ili, "ILI"),
        ] {
            if set {
                write!(f, ", {name}")?;
            }
        }
        Ok(())
    }
}

/// The SPC description of an additional sense code and qualifier, in
/// sentence case (e.g. `asc_text(0x11, 0x00) == Some("Unrecovered read
/// error")`).
///
/// Returns `None` for reserved, obsolete, vendor-specific (ASC 80h..=FFh, or
/// ASCQ 80h..=FFh without an assignment) and unknown codes. Codes whose
/// qualifier is a parameter (40h/80h..=FFh, 4Dh/xx, 70h/xx) return the
/// generic text, with `nn` standing for the ASCQ.
pub fn asc_text(asc: u8, ascq: u8) -> Option<&'static str> {
    match (asc, ascq) {
        (0x40, 0x80..=0xFF) => return Some("Diagnostic failure on component nn (80h-ffh)"),
        (0x4D, _) => return Some("Tagged overlapped commands (nn = task tag)"),
        (0x70, _) => return Some("Decompression exception short algorithm id of nn"),
        _ => {}
    }
    ASC_TABLE
        .binary_search_by_key(&(asc, ascq), |&(a, q, _)| (a, q))
        .ok()
        .and_then(|i| ASC_TABLE.get(i))
        .map(|&(_, _, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed format, MEDIUM ERROR, VALID information 0x12345.
    const FIXED_MEDIUM: [u8; 18] = [
        0xF0, 0x00, 0x03, 0x00, 0x01, 0x23, 0x45, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    /// Fixed format, UNIT ATTENTION, power on/reset.
    const FIXED_UA: [u8; 18] = [
        0x70, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x29, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    /// Descriptor format, MEDIUM ERROR, information descriptor 0x12345678.
    const DESC_MEDIUM: [u8; 20] = [
        0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x00, 0x0A, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x12, 0x34, 0x56, 0x78,
    ];
    /// Fixed format, deferred MEDIUM ERROR (write error) at 0x1000.
    const FIXED_DEFERRED: [u8; 18] = [
        0xF1, 0x00, 0x03, 0x00, 0x00, 0x10, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    /// Descriptor format, deferred HARDWARE ERROR, no descriptors.
    const DESC_DEFERRED: [u8; 8] = [0x73, 0x04, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00];
    /// Fixed format, ILLEGAL REQUEST, invalid field in CDB byte 2 bit 5.
    const FIXED_ILLEGAL: [u8; 18] = [
        0x70, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00,
        0xCD, 0x00, 0x02,
    ];
    /// Descriptor format, ILLEGAL REQUEST, parameter list byte 260, no bit.
    const DESC_ILLEGAL: [u8; 16] = [
        0x72, 0x05, 0x26, 0x00, 0x00, 0x00, 0x00, 0x08, 0x02, 0x06, 0x00, 0x00, 0x80, 0x01, 0x04,
        0x00,
    ];
    /// Fixed format, NOT READY, format in progress at 50%.
    const FIXED_PROGRESS: [u8; 18] = [
        0x70, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x04, 0x04, 0x00,
        0x80, 0x80, 0x00,
    ];

    fn samples() -> [&'static [u8]; 8] {
        [
            &FIXED_MEDIUM,
            &FIXED_UA,
            &DESC_MEDIUM,
            &FIXED_DEFERRED,
            &DESC_DEFERRED,
            &FIXED_ILLEGAL,
            &DESC_ILLEGAL,
            &FIXED_PROGRESS,
        ]
    }

    fn parse(bytes: &[u8]) -> Sense {
        Sense::parse(bytes).expect("valid sense data")
    }

    #[test]
    fn fixed_medium_error_with_information() {
        let s = parse(&FIXED_MEDIUM);
        assert_eq!(s.format, SenseFormat::Fixed);
        assert!(s.current);
        assert_eq!(s.key, SenseKey::MediumError);
        assert_eq!((s.asc, s.ascq), (0x11, 0x00));
        assert_eq!(s.information, Some(0x12345));
        assert_eq!(s.command_specific, None);
        assert_eq!(s.sense_key_specific, None);
        assert!(!s.filemark && !s.eom && !s.ili);
        assert_eq!(s.raw(), &FIXED_MEDIUM);
        assert_eq!(s.response_code(), 0x70);
        assert_eq!(s.asc_text(), Some("Unrecovered read error"));
        assert!(!s.is_unit_attention() && !s.is_recovered());
        assert_eq!(
            s.to_string(),
            "MEDIUM ERROR: Unrecovered read error (asc 0x11, ascq 0x00), information 0x12345"
        );
    }

    #[test]
    fn information_needs_valid_bit() {
        let mut bytes = FIXED_MEDIUM;
        bytes[0] = 0x70;
        assert_eq!(parse(&bytes).information, None);
    }

    #[test]
    fn fixed_unit_attention_power_on() {
        let s = parse(&FIXED_UA);
        assert_eq!(s.key, SenseKey::UnitAttention);
        assert!(s.is_unit_attention());
        assert!(s.is_power_on_or_reset());
        assert_eq!(s.information, None);
        assert_eq!(
            s.to_string(),
            "UNIT ATTENTION: Power on, reset, or bus device reset occurred (asc 0x29, ascq 0x00)"
        );
        let mut other = FIXED_UA;
        other[12] = 0x2A;
        other[13] = 0x09;
        let s = parse(&other);
        assert!(s.is_unit_attention() && !s.is_power_on_or_reset());
        assert_eq!(
            s.to_string(),
            "UNIT ATTENTION: Capacity data has changed (asc 0x2a, ascq 0x09)"
        );
        // ASC 29h with another sense key is not a reset report.
        other[2] = 0x05;
        other[12] = 0x29;
        assert!(!parse(&other).is_power_on_or_reset());
    }

    #[test]
    fn descriptor_medium_error_with_information() {
        let s = parse(&DESC_MEDIUM);
        assert_eq!(s.format, SenseFormat::Descriptor);
        assert!(s.current);
        assert_eq!(s.key, SenseKey::MediumError);
        assert_eq!((s.asc, s.ascq), (0x11, 0x00));
        assert_eq!(s.information, Some(0x1234_5678));
        assert_eq!(s.response_code(), 0x72);
        assert_eq!(
            s.to_string(),
            "MEDIUM ERROR: Unrecovered read error (asc 0x11, ascq 0x00), information 0x12345678"
        );
        // Without VALID the information descriptor is ignored.
        let mut bytes = DESC_MEDIUM;
        bytes[10] = 0x00;
        assert_eq!(parse(&bytes).information, None);
    }

    #[test]
    fn descriptor_full_width_information() {
        let bytes = [
            0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x00, 0x0A, 0x80, 0x00, 0xFE, 0xDC,
            0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
        ];
        assert_eq!(parse(&bytes).information, Some(0xFEDC_BA98_7654_3210));
    }

    #[test]
    fn deferred_errors() {
        let s = parse(&FIXED_DEFERRED);
        assert!(!s.current);
        assert_eq!(s.format, SenseFormat::Fixed);
        assert_eq!(s.response_code(), 0x71);
        assert_eq!(
            s.to_string(),
            "MEDIUM ERROR (deferred): Write error (asc 0x0c, ascq 0x00), information 0x1000"
        );
        let s = parse(&DESC_DEFERRED);
        assert!(!s.current);
        assert_eq!(s.format, SenseFormat::Descriptor);
        assert_eq!(s.key, SenseKey::HardwareError);
        assert_eq!(
            s.to_string(),
            "HARDWARE ERROR (deferred): Internal target failure (asc 0x44, ascq 0x00)"
        );
    }

    #[test]
    fn illegal_request_field_pointer_fixed() {
        let s = parse(&FIXED_ILLEGAL);
        assert_eq!(s.key, SenseKey::IllegalRequest);
        assert_eq!(s.sense_key_specific, Some([0xCD, 0x00, 0x02]));
        assert_eq!(
            s.field_pointer(),
            Some(FieldPointer {
                in_cdb: true,
                byte: 2,
                bit: Some(5)
            })
        );
        assert_eq!(s.progress(), None);
        assert_eq!(s.retry_count(), None);
        assert_eq!(
            s.to_string(),
            "ILLEGAL REQUEST: Invalid field in CDB (asc 0x24, ascq 0x00), field pointer CDB byte 2 bit 5"
        );
        // SKSV clear: no sense-key-specific data.
        let mut bytes = FIXED_ILLEGAL;
        bytes[15] &= 0x7F;
        let s = parse(&bytes);
        assert_eq!(s.sense_key_specific, None);
        assert_eq!(s.field_pointer(), None);
        assert_eq!(
            s.to_string(),
            "ILLEGAL REQUEST: Invalid field in CDB (asc 0x24, ascq 0x00)"
        );
    }

    #[test]
    fn illegal_request_field_pointer_descriptor() {
        let s = parse(&DESC_ILLEGAL);
        assert_eq!(s.sense_key_specific, Some([0x80, 0x01, 0x04]));
        assert_eq!(
            s.field_pointer(),
            Some(FieldPointer {
                in_cdb: false,
                byte: 260,
                bit: None
            })
        );
        assert_eq!(
            s.to_string(),
            "ILLEGAL REQUEST: Invalid field in parameter list (asc 0x26, ascq 0x00), \
             field pointer parameter data byte 260"
        );
    }

    #[test]
    fn progress_and_retry_count() {
        let s = parse(&FIXED_PROGRESS);
        assert_eq!(s.progress(), Some(0x8000));
        assert_eq!(s.field_pointer(), None);
        assert_eq!(
            s.to_string(),
            "NOT READY: Logical unit not ready, format in progress (asc 0x04, ascq 0x04), \
             progress 50.0%"
        );
        let mut bytes = FIXED_PROGRESS;
        bytes[2] = 0x01; // RECOVERED ERROR
        bytes[12] = 0x17;
        bytes[13] = 0x01;
        bytes[15] = 0x80;
        bytes[16] = 0x00;
        bytes[17] = 0x03;
        let s = parse(&bytes);
        assert!(s.is_recovered());
        assert_eq!(s.retry_count(), Some(3));
        assert_eq!(s.progress(), None);
        assert_eq!(
            s.to_string(),
            "RECOVERED ERROR: Recovered data with retries (asc 0x17, ascq 0x01), \
             actual retry count 3"
        );
    }

    #[test]
    fn fixed_command_specific_information() {
        let mut bytes = FIXED_MEDIUM;
        bytes[8..12].copy_from_slice(&[0x00, 0x00, 0x10, 0x00]);
        let s = parse(&bytes);
        assert_eq!(s.command_specific, Some(0x1000));
        assert_eq!(
            s.to_string(),
            "MEDIUM ERROR: Unrecovered read error (asc 0x11, ascq 0x00), information 0x12345, \
             command-specific information 0x1000"
        );
        // Not covered by the additional sense length: ignored.
        bytes[7] = 3;
        assert_eq!(parse(&bytes).command_specific, None);
        bytes[7] = 4;
        assert_eq!(parse(&bytes).command_specific, Some(0x1000));
    }

    #[test]
    fn descriptor_command_specific_and_flags() {
        let bytes = [
            0x72, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x14, // header, 20 more bytes
            0x01, 0x0A, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0x0A, 0xBC, // command-specific
            0x04, 0x02, 0x00, 0xE0, // stream commands: FILEMARK, EOM, ILI
        ];
        let s = parse(&bytes);
        assert_eq!(s.command_specific, Some(0xABC));
        assert!(s.filemark && s.eom && s.ili);
        assert_eq!(
            s.to_string(),
            "NO SENSE: Filemark detected (asc 0x00, ascq 0x01), \
             command-specific information 0xabc, filemark, EOM, ILI"
        );
        let block = [
            0x72, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x05, 0x02, 0x00, 0x20,
        ];
        let s = parse(&block);
        assert!(s.ili && !s.filemark && !s.eom);
    }

    #[test]
    fn fixed_flags() {
        let mut bytes = FIXED_UA;
        bytes[2] = 0xE0; // NO SENSE with FILEMARK, EOM, ILI
        bytes[12] = 0x00;
        bytes[13] = 0x01;
        let s = parse(&bytes);
        assert_eq!(s.key, SenseKey::NoSense);
        assert!(s.filemark && s.eom && s.ili);
        assert_eq!(
            s.to_string(),
            "NO SENSE: Filemark detected (asc 0x00, ascq 0x01), filemark, EOM, ILI"
        );
    }

    /// Checks `parse` on every prefix of `full`; returns how many parsed.
    fn check_prefixes(full: &[u8]) -> usize {
        let whole = parse(full);
        let mut parsed = 0;
        for n in 0..=full.len() {
            let prefix = &full[..n];
            let got = Sense::parse(prefix);
            let needed = match full[0] & 0x7F {
                0x70 | 0x71 => 3,
                _ => 4,
            };
            assert_eq!(
                got.is_some(),
                n >= needed,
                "prefix length {n} of {full:02x?}"
            );
            let Some(s) = got else { continue };
            parsed += 1;
            assert_eq!(s.raw(), prefix);
            assert_eq!(s.key, whole.key);
            assert_eq!(s.format, whole.format);
            assert_eq!(s.current, whole.current);
            if s.format == SenseFormat::Fixed {
                let asc = if n > 12 { whole.asc } else { 0 };
                let ascq = if n > 13 { whole.ascq } else { 0 };
                assert_eq!((s.asc, s.ascq), (asc, ascq), "prefix length {n}");
                let info = if n >= 7 { whole.information } else { None };
                assert_eq!(s.information, info, "prefix length {n}");
                let sks = if n >= 18 {
                    whole.sense_key_specific
                } else {
                    None
                };
                assert_eq!(s.sense_key_specific, sks, "prefix length {n}");
            } else {
                assert_eq!((s.asc, s.ascq), (whole.asc, whole.ascq));
                // A truncated descriptor is dropped, never half-decoded.
                if s.information.is_some() {
                    assert_eq!(s.information, whole.information, "prefix length {n}");
                }
                if s.sense_key_specific.is_some() {
                    assert_eq!(s.sense_key_specific, whole.sense_key_specific);
                }
            }
            if n == full.len() {
                assert_eq!(s, whole);
            }
            // Display must work on anything parse accepts.
            assert!(!s.to_string().is_empty());
        }
        parsed
    }

    #[test]
    fn truncated_at_every_length() {
        for sample in samples() {
            let parsed = check_prefixes(sample);
            assert!(parsed > 0);
        }
        assert_eq!(Sense::parse(&[]), None);
        // The samples' descriptors run to the end of the data.
        assert_eq!(parse(&DESC_MEDIUM[..19]).information, None);
        assert_eq!(parse(&DESC_ILLEGAL[..15]).sense_key_specific, None);
        assert_eq!(parse(&DESC_ILLEGAL[..7]).key, SenseKey::IllegalRequest);
    }

    #[test]
    fn additional_length_larger_than_buffer() {
        for sample in samples() {
            let mut lying = sample.to_vec();
            lying[7] = 0xFF;
            let s = parse(&lying);
            let honest = parse(sample);
            assert_eq!(s.key, honest.key);
            assert_eq!((s.asc, s.ascq), (honest.asc, honest.ascq));
            assert_eq!(s.information, honest.information);
            assert_eq!(s.sense_key_specific, honest.sense_key_specific);
            assert_eq!(s.raw(), &lying[..]);
            check_prefixes(&lying);
        }
    }

    #[test]
    fn additional_length_smaller_than_buffer() {
        // Fixed: ASC/ASCQ still read from the buffer, the SKS is not covered.
        let mut bytes = FIXED_ILLEGAL;
        bytes[7] = 0;
        let s = parse(&bytes);
        assert_eq!((s.asc, s.ascq), (0x24, 0x00));
        assert_eq!(s.sense_key_specific, None);
        bytes[7] = 9;
        assert_eq!(parse(&bytes).sense_key_specific, None);
        bytes[7] = 10;
        assert_eq!(parse(&bytes).sense_key_specific, Some([0xCD, 0x00, 0x02]));
        // Descriptor: a descriptor past the additional length is ignored.
        let mut bytes = DESC_MEDIUM.to_vec();
        bytes[7] = 0x0B;
        assert_eq!(parse(&bytes).information, None);
        bytes[7] = 0x00;
        bytes.extend_from_slice(&[0x04, 0x02, 0x00, 0x80]);
        let s = parse(&bytes);
        assert_eq!(s.information, None);
        assert!(!s.filemark);
    }

    #[test]
    fn descriptor_list_overrun() {
        // Information descriptor, then a sense key specific descriptor that
        // claims 6 more bytes but only 2 are present.
        let bytes = [
            0x72, 0x05, 0x24, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x0A, 0x80, 0x00, 0, 0, 0, 0, 0,
            0, 0x00, 0x2A, 0x02, 0x06, 0xC0, 0x00,
        ];
        let s = parse(&bytes);
        assert_eq!(s.information, Some(0x2A));
        assert_eq!(s.sense_key_specific, None);
        check_prefixes(&bytes);

        // First descriptor claims 255 more bytes: nothing decoded.
        let bytes = [
            0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0xF4, 0x00, 0xFF, 0x80, 0x00, 0, 0, 0, 0, 0,
            0, 0, 0x01,
        ];
        let s = parse(&bytes);
        assert_eq!(s.information, None);
        assert_eq!(s.key, SenseKey::MediumError);

        // A lone descriptor type byte with no length byte.
        let s = parse(&[0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00]);
        assert_eq!(s.information, None);

        // Descriptors shorter than their standard length are tolerated.
        let bytes = [
            0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x02, 0x80, 0x00, 0x02, 0x01,
            0x80, 0x04, 0x00,
        ];
        let s = parse(&bytes);
        assert_eq!(s.information, None);
        assert_eq!(s.sense_key_specific, None);
        assert!(!s.filemark);
    }

    #[test]
    fn first_descriptor_of_a_type_wins() {
        let bytes = [
            0x72, 0x03, 0x11, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x0A, 0x80, 0x00, 0, 0, 0, 0, 0,
            0, 0, 0x01, 0x00, 0x0A, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0x02,
        ];
        assert_eq!(parse(&bytes).information, Some(1));
    }

    #[test]
    fn rejects_other_response_codes() {
        for code in [0x00u8, 0x01, 0x6F, 0x74, 0x7E, 0x7F, 0xFF, 0xF4] {
            let mut bytes = FIXED_UA;
            bytes[0] = code;
            assert_eq!(Sense::parse(&bytes), None, "response code {code:#04x}");
        }
        // The VALID bit does not change the response code.
        for code in 0x70u8..=0x73 {
            let mut bytes = FIXED_UA;
            bytes[0] = code | 0x80;
            assert!(Sense::parse(&bytes).is_some());
        }
    }

    #[test]
    fn long_input_is_capped() {
        let mut bytes = vec![0u8; 300];
        bytes[..18].copy_from_slice(&FIXED_UA);
        bytes[7] = 0xFF;
        let s = parse(&bytes);
        assert_eq!(s.raw().len(), MAX_SENSE_LEN);
        assert_eq!(s.raw(), &bytes[..MAX_SENSE_LEN]);
        assert!(s.is_power_on_or_reset());
    }

    #[test]
    fn display_unknown_and_vendor_codes() {
        let with = |key: u8, asc: u8, ascq: u8| {
            let mut bytes = FIXED_UA;
            bytes[2] = key;
            bytes[12] = asc;
            bytes[13] = ascq;
            parse(&bytes).to_string()
        };
        assert_eq!(
            with(0x06, 0x80, 0x01),
            "UNIT ATTENTION: Vendor specific (asc 0x80, ascq 0x01)"
        );
        assert_eq!(
            with(0x0B, 0xFF, 0xFF),
            "ABORTED COMMAND: Vendor specific (asc 0xff, ascq 0xff)"
        );
        assert_eq!(
            with(0x0B, 0x7E, 0x01),
            "ABORTED COMMAND: asc 0x7e, ascq 0x01"
        );
        assert_eq!(
            with(0x02, 0x04, 0x80),
            "NOT READY: Vendor specific qualification (asc 0x04, ascq 0x80)"
        );
        assert_eq!(
            with(0x0C, 0x00, 0x00),
            "RESERVED: No additional sense information (asc 0x00, ascq 0x00)"
        );
        assert_eq!(
            with(0x04, 0x40, 0x85),
            "HARDWARE ERROR: Diagnostic failure on component nn (80h-ffh) (asc 0x40, ascq 0x85)"
        );
    }

    #[test]
    fn asc_text_lookups() {
        assert_eq!(
            asc_text(0x00, 0x00),
            Some("No additional sense information")
        );
        assert_eq!(
            asc_text(0x04, 0x01),
            Some("Logical unit is in process of becoming ready")
        );
        assert_eq!(asc_text(0x20, 0x00), Some("Invalid command operation code"));
        assert_eq!(
            asc_text(0x21, 0x00),
            Some("Logical block address out of range")
        );
        assert_eq!(asc_text(0x24, 0x00), Some("Invalid field in CDB"));
        assert_eq!(
            asc_text(0x28, 0x00),
            Some("Not ready to ready change, medium may have changed")
        );
        assert_eq!(asc_text(0x29, 0x01), Some("Power on occurred"));
        assert_eq!(asc_text(0x29, 0x02), Some("SCSI bus reset occurred"));
        assert_eq!(
            asc_text(0x29, 0x03),
            Some("Bus device reset function occurred")
        );
        assert_eq!(asc_text(0x29, 0x04), Some("Device internal reset"));
        assert_eq!(asc_text(0x2A, 0x01), Some("Mode parameters changed"));
        assert_eq!(
            asc_text(0x2F, 0x00),
            Some("Commands cleared by another initiator")
        );
        assert_eq!(asc_text(0x3A, 0x00), Some("Medium not present"));
        assert_eq!(asc_text(0x3F, 0x0E), Some("Reported luns data has changed"));
        assert_eq!(asc_text(0x44, 0x00), Some("Internal target failure"));
        assert_eq!(asc_text(0x47, 0x00), Some("SCSI parity error"));
        assert_eq!(asc_text(0x4E, 0x00), Some("Overlapped commands attempted"));
        assert_eq!(
            asc_text(0x5D, 0x00),
            Some("Failure prediction threshold exceeded")
        );
        assert_eq!(
            asc_text(0x5D, 0x14),
            Some("Hardware impending failure too many block reassigns")
        );
        assert_eq!(
            asc_text(0x4D, 0x12),
            Some("Tagged overlapped commands (nn = task tag)")
        );
        // Unknown, reserved, obsolete and vendor-specific codes.
        assert_eq!(asc_text(0x7E, 0x01), None);
        assert_eq!(asc_text(0x29, 0x7F), None);
        assert_eq!(asc_text(0x40, 0x01), None);
        assert_eq!(asc_text(0x80, 0x00), None);
        assert_eq!(asc_text(0xFF, 0xFF), None);
        assert_eq!(asc_text(0x11, 0x80), None);
    }

    #[test]
    fn asc_table_is_sorted_and_large() {
        assert!(ASC_TABLE.len() >= 150);
        for pair in ASC_TABLE.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!((a.0, a.1) < (b.0, b.1), "{a:?} before {b:?}");
        }
        for &(asc, ascq, text) in ASC_TABLE {
            assert!(asc < 0x80, "vendor range in table: {asc:#04x}");
            assert!(!text.is_empty());
            assert_eq!(asc_text(asc, ascq), Some(text));
        }
    }

    #[test]
    fn sense_key_values_and_names() {
        let names = [
            "NO SENSE",
            "RECOVERED ERROR",
            "NOT READY",
            "MEDIUM ERROR",
            "HARDWARE ERROR",
            "ILLEGAL REQUEST",
            "UNIT ATTENTION",
            "DATA PROTECT",
            "BLANK CHECK",
            "VENDOR SPECIFIC",
            "COPY ABORTED",
            "ABORTED COMMAND",
            "RESERVED",
            "VOLUME OVERFLOW",
            "MISCOMPARE",
            "COMPLETED",
        ];
        for value in 0u8..=0xFF {
            let key = SenseKey::from_u8(value);
            assert_eq!(key as u8, value & 0x0F);
            assert_eq!(key.name(), names[usize::from(value & 0x0F)]);
            assert_eq!(key.to_string(), key.name());
        }
        assert_eq!(SenseKey::Reserved0C as u8, 0x0C);
        assert_eq!(SenseKey::Completed as u8, 0x0F);
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        // Every input of up to two bytes.
        for a in 0u8..=0xFF {
            assert!(Sense::parse(&[a]).is_none());
            for b in 0u8..=0xFF {
                let s = Sense::parse(&[a, b]);
                assert!(s.is_none());
            }
        }
        // Pseudo-random inputs with valid response codes (xorshift64).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buf = [0u8; 300];
        for round in 0..20_000 {
            let len = (next() % 301) as usize;
            for byte in buf.iter_mut().take(len) {
                *byte = next() as u8;
            }
            if len > 0 {
                buf[0] = 0x70 | (buf[0] & 0x83);
            }
            if len > 8 && round % 2 == 0 {
                // Make descriptor chains more likely to be walked.
                buf[0] = 0x72 | (buf[0] & 0x01);
                buf[9] %= 16;
            }
            let input = &buf[..len];
            match Sense::parse(input) {
                Some(s) => {
                    assert!(len >= 3);
                    assert_eq!(s.raw(), &input[..len.min(MAX_SENSE_LEN)]);
                    let _ = s.to_string();
                    let _ = format!("{s:?}");
                }
                None => assert!(len < 4, "rejected {input:02x?}"),
            }
        }
    }
}
