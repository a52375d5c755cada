//! Fuzz target `response`: every decoder in [`sgmap::response`] on the same
//! arbitrary bytes.

use sgmap::response::{
    parse_supported_vpd_pages, parse_unit_serial, BlockLimits, Capacity, Inquiry, ResponseError,
};

use super::be_at;

/// Runs every decoder on `data`: none may panic, each must accept or refuse
/// exactly as its docs say (length, page code, impossible values), what it
/// decodes must come from the documented bytes, and every error's message
/// must be non-empty.
pub(crate) fn response(data: &[u8]) {
    check_inquiry(data);
    check_capacity_10(data);
    check_capacity_16(data);
    check_supported_pages(data);
    check_unit_serial(data);
    check_block_limits(data);
}

/// A message for the user: not empty.
fn message(e: &ResponseError) {
    assert!(!e.to_string().is_empty(), "empty message for {e:?}");
}

/// An ASCII field as the decoders return it: at most `max` characters, all
/// printable ASCII, with no padding (space) at either end.
fn clean(field: &str, max: usize, what: &str) {
    assert!(field.len() <= max, "{what} {field:?} longer than {max}");
    assert!(
        field.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        "{what} {field:?} is not printable ASCII"
    );
    assert!(
        !field.starts_with(' ') && !field.ends_with(' '),
        "{what} {field:?} keeps padding"
    );
}

fn too_short(got: &Result<impl std::fmt::Debug, ResponseError>, needed: usize, len: usize) {
    match got {
        Err(
            e @ ResponseError::TooShort {
                needed: n, got: g, ..
            },
        ) => {
            assert_eq!((*n, *g), (needed, len), "{e:?}");
        }
        other => panic!("{len} bytes where {needed} are needed gave {other:?}"),
    }
}

fn check_inquiry(data: &[u8]) {
    let got = Inquiry::parse(data);
    if let Err(e) = &got {
        message(e);
    }
    if data.len() < Inquiry::MIN_LEN {
        return too_short(&got, Inquiry::MIN_LEN, data.len());
    }
    let inq = got.unwrap_or_else(|e| panic!("{} bytes of INQUIRY data refused: {e}", data.len()));
    assert_eq!(inq.peripheral_qualifier, data[0] >> 5);
    assert_eq!(inq.device_type, data[0] & 0x1f);
    assert_eq!(inq.removable, data[1] & 0x80 != 0);
    assert_eq!(inq.version, data[2]);
    assert_eq!(inq.response_data_format, data[3] & 0x0f);
    clean(&inq.vendor, 8, "vendor");
    clean(&inq.product, 16, "product");
    clean(&inq.revision, 4, "revision");
}

fn check_capacity_10(data: &[u8]) {
    let got = Capacity::parse_10(data);
    if let Err(e) = &got {
        message(e);
    }
    let (Some(last), Some(block_size)) = (be_at(data, 0, 4), be_at(data, 4, 4)) else {
        return too_short(&got, Capacity::LEN_10, data.len());
    };
    let block_size = block_size as u32; // 4 bytes: fits
    match got {
        Ok(cap) => {
            assert!(last < u64::from(u32::MAX) && block_size != 0, "{cap:?}");
            assert_eq!((cap.blocks, cap.block_size), (last + 1, block_size));
            assert_eq!(cap.bytes(), (last + 1) * u64::from(block_size));
            assert_eq!(cap.protection_type, None);
            assert!(!cap.protection_enabled && !cap.thin_provisioned);
        }
        Err(ResponseError::NeedsReadCapacity16 { block_size: b }) => {
            assert_eq!((last, b), (u64::from(u32::MAX), block_size));
        }
        Err(ResponseError::Invalid { .. }) => {
            assert!(block_size == 0 && last != u64::from(u32::MAX));
        }
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn check_capacity_16(data: &[u8]) {
    let got = Capacity::parse_16(data);
    if let Err(e) = &got {
        message(e);
    }
    let (Some(last), Some(block_size)) = (be_at(data, 0, 8), be_at(data, 8, 4)) else {
        return too_short(&got, Capacity::MIN_LEN_16, data.len());
    };
    let block_size = block_size as u32; // 4 bytes: fits
    let cap = match got {
        Ok(cap) => cap,
        Err(ResponseError::Invalid { .. }) => {
            assert!(
                last == u64::MAX || block_size == 0,
                "{last:#x}, {block_size}"
            );
            return;
        }
        Err(e) => panic!("unexpected {e:?}"),
    };
    assert!(last != u64::MAX && block_size != 0);
    assert_eq!((cap.blocks, cap.block_size), (last + 1, block_size));
    assert_eq!(
        cap.bytes(),
        cap.blocks.saturating_mul(u64::from(block_size))
    );
    let b12 = data.get(12).copied().unwrap_or(0);
    assert_eq!(cap.protection_enabled, b12 & 1 != 0, "PROT_EN");
    let p_type = cap.protection_enabled.then_some(((b12 >> 1) & 7) + 1);
    assert_eq!(cap.protection_type, p_type, "P_TYPE + 1");
    assert_eq!(
        cap.logical_blocks_per_physical_exponent,
        data.get(13).map_or(0, |b| b & 0x0f)
    );
    let b14_15 = be_at(data, 14, 2).unwrap_or(0);
    assert_eq!(cap.thin_provisioned, b14_15 & 0x8000 != 0, "LBPME");
    assert_eq!(cap.unmapped_read_zeros, b14_15 & 0x4000 != 0, "LBPRZ");
    assert_eq!(u64::from(cap.lowest_aligned_lba), b14_15 & 0x3fff);
}

/// The VPD page body `data` must give for page `page` (all of it, or up to
/// `max_body` bytes), or the error it must give.
fn vpd_body(data: &[u8], page: u8, max_body: Option<usize>) -> Result<&[u8], ResponseError> {
    let too_short = |needed| ResponseError::TooShort {
        what: "",
        needed,
        got: data.len(),
    };
    if data.len() < 4 {
        return Err(too_short(4));
    }
    if data[1] != page {
        return Err(ResponseError::WrongPage {
            expected: page,
            found: data[1],
        });
    }
    let page_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body_len = max_body.map_or(page_len, |max| page_len.min(max));
    data.get(4..4 + body_len)
        .ok_or_else(|| too_short(4 + body_len))
}

/// `got` failed as `want` did (the `what` text aside).
fn same_error(got: &ResponseError, want: &ResponseError) {
    match (got, want) {
        (
            ResponseError::TooShort { needed, got, .. },
            ResponseError::TooShort {
                needed: n, got: g, ..
            },
        ) => assert_eq!((needed, got), (n, g)),
        _ => assert_eq!(got, want),
    }
    message(got);
}

fn check_supported_pages(data: &[u8]) {
    match (parse_supported_vpd_pages(data), vpd_body(data, 0x00, None)) {
        (Ok(pages), Ok(body)) => assert_eq!(pages, body),
        (Err(got), Err(want)) => same_error(&got, &want),
        (got, want) => panic!("supported VPD pages: got {got:?}, want {want:?}"),
    }
}

fn check_unit_serial(data: &[u8]) {
    match (parse_unit_serial(data), vpd_body(data, 0x80, None)) {
        (Ok(serial), Ok(body)) => clean(&serial, body.len(), "unit serial"),
        (Err(got), Err(want)) => same_error(&got, &want),
        (got, want) => panic!("unit serial: got {got:?}, want {want:?}"),
    }
}

fn check_block_limits(data: &[u8]) {
    let limits = match (BlockLimits::parse(data), vpd_body(data, 0xb0, Some(40))) {
        (Ok(limits), Ok(body)) => (limits, body),
        (Err(got), Err(want)) => return same_error(&got, &want),
        (got, want) => panic!("block limits: got {got:?}, want {want:?}"),
    };
    let (l, body) = limits;
    // A field at page offset `at` of `n` bytes: present and not zero.
    let field = |at: usize, n: usize| be_at(body, at - 4, n).filter(|&v| v != 0);
    assert_eq!(
        l.write_same_non_zero,
        body.first().is_some_and(|b| b & 1 != 0)
    );
    assert_eq!(l.max_compare_and_write_length.map(u64::from), field(5, 1));
    assert_eq!(
        l.optimal_transfer_length_granularity.map(u64::from),
        field(6, 2)
    );
    assert_eq!(l.max_transfer_length.map(u64::from), field(8, 4));
    assert_eq!(l.optimal_transfer_length.map(u64::from), field(12, 4));
    assert_eq!(l.max_prefetch_length.map(u64::from), field(16, 4));
    assert_eq!(l.max_unmap_lba_count.map(u64::from), field(20, 4));
    assert_eq!(
        l.max_unmap_block_descriptor_count.map(u64::from),
        field(24, 4)
    );
    assert_eq!(l.optimal_unmap_granularity.map(u64::from), field(28, 4));
    let uga = be_at(body, 28, 4)
        .filter(|v| v & 0x8000_0000 != 0)
        .map(|v| v & 0x7fff_ffff);
    assert_eq!(
        l.unmap_granularity_alignment.map(u64::from),
        uga,
        "UGAVALID"
    );
    assert_eq!(l.max_write_same_length, field(36, 8));
}
