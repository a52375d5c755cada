//! Fuzz target `cdb`: [`Cdb::new`] on arbitrary bytes, and the CDB builders
//! on integers read from the same bytes.

use sgmap::cdb::{Cdb, CdbError, MAX_CDB_LEN, MIN_CDB_LEN};

use super::{be_at, Bytes};

// Opcodes (SBC-3, SPC-4).
const READ_10: u8 = 0x28;
const READ_16: u8 = 0x88;
const WRITE_10: u8 = 0x2a;
const WRITE_16: u8 = 0x8a;
const READ_BUFFER: u8 = 0x3c;
const WRITE_BUFFER: u8 = 0x3b;
const MODE_SENSE_10: u8 = 0x5a;
/// The opcodes with a FUA bit (READ/WRITE 10, 12 and 16).
const FUA_OPCODES: [u8; 6] = [READ_10, WRITE_10, 0xa8, 0xaa, READ_16, WRITE_16];

/// Checks [`Cdb::new`] on `data` against the length rules its docs state,
/// then feeds integers read from `data` to the builders: each either fails
/// with a non-empty message for a value that does not fit, or gives a CDB
/// that [`Cdb::new`] accepts and whose fields decode back to the inputs.
pub(crate) fn cdb(data: &[u8]) {
    check_new(data);

    let mut r = Bytes::new(data);
    let (lba, blocks) = (r.u64(), r.u32());
    check_read_write(lba, blocks);
    // Values near the READ(10)/WRITE(10) limits, so both forms are reached
    // from short inputs too.
    check_read_write(lba >> 32, blocks >> 16);

    let (mode, id, offset, len) = (r.u8(), r.u8(), r.u32(), r.u32());
    check_buffer(mode, id, offset, len);
    check_buffer(mode & 0x3f, id, offset >> 7, len >> 7);

    let (page, subpage, alloc_len, dbd) = (r.u8(), r.u8(), r.u16(), r.bool());
    check_mode_sense(page, subpage, alloc_len, dbd);

    // The infallible builders give CDBs that validation accepts.
    let (a32, a16, a8) = (r.u32(), r.u16(), r.u8());
    for built in [
        Cdb::read_10(a32, a16),
        Cdb::write_10(a32, a16),
        Cdb::synchronize_cache_10(a32, a16),
        Cdb::inquiry(a16),
        Cdb::inquiry_vpd(a8, a16),
        Cdb::read_capacity_16(a32),
        Cdb::request_sense(a8),
        Cdb::test_unit_ready(),
        Cdb::read_capacity_10(),
    ] {
        accepted(&built);
    }
    // READ(16) and WRITE(16) refuse exactly the ranges past the last LBA.
    let wraps = a32 > 0 && lba.checked_add(u64::from(a32) - 1).is_none();
    for built in [Cdb::read_16(lba, a32), Cdb::write_16(lba, a32)] {
        assert_eq!(built.is_err(), wraps, "lba {lba}, {a32} blocks: {built:?}");
        if let Ok(cdb) = built {
            accepted(&cdb);
        }
    }
}

/// What [`Cdb::new`] must decide for `data`, from the documented rules.
fn expected_new(data: &[u8]) -> Result<(), CdbError> {
    let len = data.len();
    if !(MIN_CDB_LEN..=MAX_CDB_LEN).contains(&len) {
        return Err(CdbError::BadLength { len });
    }
    let opcode = data[0];
    let group = opcode >> 5;
    let fixed = match group {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    };
    if let Some(expected) = fixed.filter(|&n| n != len) {
        return Err(CdbError::GroupLengthMismatch {
            opcode,
            group,
            expected,
            len,
        });
    }
    if opcode == 0x7f {
        let Some(&additional) = data.get(7) else {
            return Err(CdbError::VariableLengthTooShort { len });
        };
        if usize::from(additional) + 8 != len {
            return Err(CdbError::VariableLengthMismatch { additional, len });
        }
    }
    Ok(())
}

fn check_new(data: &[u8]) {
    let got = Cdb::new(data);
    let expected = expected_new(data);
    assert_eq!(
        got.as_ref().map(|_| ()).map_err(Clone::clone),
        expected,
        "Cdb::new({data:02x?})"
    );
    match got {
        Ok(cdb) => {
            assert!((MIN_CDB_LEN..=MAX_CDB_LEN).contains(&cdb.len()));
            assert_eq!(cdb.len(), data.len());
            assert!(!cdb.is_empty());
            assert_eq!(cdb.as_bytes(), data, "as_bytes() differs from the input");
            assert_eq!(cdb.as_ref(), data);
            assert_eq!(cdb.opcode(), data[0]);
            assert_eq!(Cdb::try_from(data), Ok(cdb));
            let has_fua = FUA_OPCODES.contains(&cdb.opcode());
            assert_eq!(cdb.fua(), has_fua && data[1] & 0x08 != 0, "fua()");
            match cdb.with_fua() {
                Ok(f) => {
                    assert!(has_fua, "with_fua accepted opcode {:#04x}", cdb.opcode());
                    assert!(f.fua());
                    let mut want = data.to_vec();
                    want[1] |= 0x08;
                    assert_eq!(f.as_bytes(), &want[..], "with_fua changed more than FUA");
                }
                Err(e) => {
                    assert!(!has_fua, "with_fua refused opcode {:#04x}", cdb.opcode());
                    assert_eq!(e, CdbError::FuaNotApplicable { opcode: data[0] });
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty message for {e:?}"),
    }
}

/// `cdb` passes validation unchanged.
fn accepted(cdb: &Cdb) {
    assert_eq!(
        Cdb::new(cdb.as_bytes()),
        Ok(*cdb),
        "Cdb::new refused the builder's {:02x?}",
        cdb.as_bytes()
    );
}

fn check_read_write(lba: u64, blocks: u32) {
    let short = lba <= u64::from(u32::MAX) && blocks <= u32::from(u16::MAX);
    for (built, op10, op16) in [
        (Cdb::read(lba, blocks), READ_10, READ_16),
        (Cdb::write(lba, blocks), WRITE_10, WRITE_16),
    ] {
        let wraps = blocks > 0 && lba.checked_add(u64::from(blocks) - 1).is_none();
        assert_eq!(
            built.is_err(),
            wraps,
            "lba {lba}, {blocks} blocks: {built:?}"
        );
        let cdb = match built {
            Ok(cdb) => cdb,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "empty message for {e:?}");
                continue;
            }
        };
        accepted(&cdb);
        let b = cdb.as_bytes();
        let (decoded_lba, decoded_blocks) = if short {
            assert_eq!(
                (cdb.len(), cdb.opcode()),
                (10, op10),
                "not the 10-byte form"
            );
            (be_at(b, 2, 4), be_at(b, 7, 2))
        } else {
            assert_eq!(
                (cdb.len(), cdb.opcode()),
                (16, op16),
                "not the 16-byte form"
            );
            (be_at(b, 2, 8), be_at(b, 10, 4))
        };
        assert_eq!(
            (decoded_lba, decoded_blocks),
            (Some(lba), Some(u64::from(blocks))),
            "{b:02x?} does not decode back to lba {lba}, {blocks} blocks"
        );
        assert!(!cdb.fua());
    }
}

fn check_buffer(mode: u8, id: u8, offset: u32, len: u32) {
    let fits = mode <= 0x1f && offset <= 0xff_ffff && len <= 0xff_ffff;
    for (built, opcode) in [
        (Cdb::read_buffer(mode, id, offset, len), READ_BUFFER),
        (Cdb::write_buffer(mode, id, offset, len), WRITE_BUFFER),
    ] {
        match built {
            Ok(cdb) => {
                assert!(
                    fits,
                    "accepted mode {mode:#x}, offset {offset:#x}, len {len:#x}"
                );
                accepted(&cdb);
                let b = cdb.as_bytes();
                assert_eq!((cdb.len(), cdb.opcode()), (10, opcode));
                assert_eq!((b[1], b[2]), (mode, id));
                assert_eq!(be_at(b, 3, 3), Some(u64::from(offset)));
                assert_eq!(be_at(b, 6, 3), Some(u64::from(len)));
            }
            Err(e) => {
                assert!(
                    !fits,
                    "refused mode {mode:#x}, offset {offset:#x}, len {len:#x}"
                );
                assert!(matches!(e, CdbError::FieldTooLarge { .. }), "{e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

fn check_mode_sense(page: u8, subpage: u8, alloc_len: u16, dbd: bool) {
    match Cdb::mode_sense_10(page, subpage, alloc_len, dbd) {
        Ok(cdb) => {
            assert!(page <= 0x3f, "accepted page {page:#x}");
            accepted(&cdb);
            let b = cdb.as_bytes();
            assert_eq!((cdb.len(), cdb.opcode()), (10, MODE_SENSE_10));
            assert_eq!(b[1] & 0x08 != 0, dbd, "DBD");
            assert_eq!(
                (b[2], b[3]),
                (page, subpage),
                "page control 0, page, subpage"
            );
            assert_eq!(be_at(b, 7, 2), Some(u64::from(alloc_len)));
        }
        Err(e) => {
            assert!(page > 0x3f, "refused page {page:#x}: {e}");
            assert!(matches!(e, CdbError::FieldTooLarge { .. }), "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}
