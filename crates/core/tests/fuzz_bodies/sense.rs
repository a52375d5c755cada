//! Fuzz target `sense`: [`Sense::parse`] on arbitrary bytes.

use sgmap::sense::{asc_text, Sense, SenseFormat, SenseKey, MAX_SENSE_LEN};

use super::be_at;

/// Decodes `data` as sense data and checks what the decoder documents:
/// `Some` exactly for a 70h..=73h response code with the sense key present,
/// `raw()` the input cut to 252 bytes, the format, the sense key and
/// ASC/ASCQ taken from the right bytes for the format, the fixed-format flags
/// and INFORMATION, a non-empty one-line `Display`, and a decoding that is
/// the same when done again from `raw()`. Also looks up `asc_text` for the
/// first two bytes as an arbitrary ASC/ASCQ.
pub(crate) fn sense(data: &[u8]) {
    if let [asc, ascq, ..] = *data {
        check_asc_text(asc, ascq);
    }

    let parsed = Sense::parse(data);
    let b = data.get(..MAX_SENSE_LEN).unwrap_or(data);
    let code = b.first().map(|&b0| b0 & 0x7f);
    let expect_some = match code {
        Some(0x70 | 0x71) => b.len() >= 3,
        Some(0x72 | 0x73) => b.len() >= 4,
        _ => false,
    };
    assert_eq!(
        parsed.is_some(),
        expect_some,
        "Sense::parse gave {parsed:?} for response code {code:02x?} and {} bytes",
        b.len()
    );
    let Some(s) = parsed else { return };
    let code = code.unwrap_or_default();

    assert_eq!(s.raw(), b, "raw() is not the input cut to 252 bytes");
    assert_eq!(s.response_code(), code);
    let fixed = code <= 0x71;
    let format = if fixed {
        SenseFormat::Fixed
    } else {
        SenseFormat::Descriptor
    };
    assert_eq!(s.format, format);
    assert_eq!(s.current, code & 1 == 0, "current vs deferred");

    // The sense key: byte 2 (fixed) or byte 1 (descriptor), low nibble.
    let key_byte = if fixed { b[2] } else { b[1] };
    assert_eq!(s.key as u8, key_byte & 0x0f, "sense key");
    assert_eq!(s.key, SenseKey::from_u8(key_byte));

    // ASC/ASCQ: bytes 12 and 13 (fixed, 0 when absent) or 2 and 3.
    let (asc, ascq) = if fixed {
        (
            b.get(12).copied().unwrap_or(0),
            b.get(13).copied().unwrap_or(0),
        )
    } else {
        (b[2], b[3])
    };
    assert_eq!((s.asc, s.ascq), (asc, ascq), "ASC/ASCQ");

    if fixed {
        let flags = b[2];
        assert_eq!(s.filemark, flags & 0x80 != 0, "FILEMARK");
        assert_eq!(s.eom, flags & 0x40 != 0, "EOM");
        assert_eq!(s.ili, flags & 0x20 != 0, "ILI");
        let information = if b[0] & 0x80 != 0 {
            be_at(b, 3, 4)
        } else {
            None
        };
        assert_eq!(s.information, information, "fixed INFORMATION");
        // Command-specific information: bytes 8..=11, only where the
        // additional sense length (byte 7) covers them, and never 0.
        let declared = b
            .get(7)
            .map_or(b.len(), |&n| b.len().min(8 + usize::from(n)));
        let cs = be_at(&b[..declared], 8, 4).filter(|&v| v != 0);
        assert_eq!(s.command_specific, cs, "fixed COMMAND-SPECIFIC INFORMATION");
        if let Some(v) = s.information {
            assert!(v <= u64::from(u32::MAX), "fixed INFORMATION has 4 bytes");
        }
    }
    if let Some([b0, _, _]) = s.sense_key_specific {
        assert!(b0 & 0x80 != 0, "sense-key-specific kept without SKSV");
    }

    // The decoded views each belong to their sense keys only.
    if s.field_pointer().is_some() {
        assert_eq!(s.key, SenseKey::IllegalRequest);
    }
    if s.progress().is_some() {
        assert!(matches!(s.key, SenseKey::NoSense | SenseKey::NotReady));
    }
    if s.retry_count().is_some() {
        assert!(matches!(
            s.key,
            SenseKey::RecoveredError | SenseKey::MediumError | SenseKey::HardwareError
        ));
    }
    if let Some(bit) = s.field_pointer().and_then(|fp| fp.bit) {
        assert!(bit <= 7, "field pointer bit {bit}");
    }

    check_asc_text(s.asc, s.ascq);
    assert_eq!(s.asc_text(), asc_text(s.asc, s.ascq));

    let text = s.to_string();
    assert!(!text.is_empty(), "empty Display");
    assert!(
        text.starts_with(s.key.name()),
        "Display {text:?} does not start with the sense key"
    );
    assert!(!text.contains('\n'), "Display {text:?} is not one line");
    if let (Some(t), true) = (s.asc_text(), s.asc < 0x80) {
        assert!(
            text.contains(t),
            "Display {text:?} lacks the ASC text {t:?}"
        );
    }
    assert!(!format!("{s:?}").is_empty());

    assert_eq!(
        Sense::parse(s.raw()).as_ref(),
        Some(&s),
        "decoding raw() again gives something else"
    );
}

/// `asc_text` never panics, gives non-empty text, and has none for a vendor
/// specific ASC (80h..=FFh).
fn check_asc_text(asc: u8, ascq: u8) {
    let text = asc_text(asc, ascq);
    if let Some(t) = text {
        assert!(!t.is_empty(), "empty text for asc {asc:#04x}/{ascq:#04x}");
    }
    if asc >= 0x80 {
        assert_eq!(text, None, "text for vendor specific asc {asc:#04x}");
    }
}
