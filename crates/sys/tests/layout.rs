//! Layouts and constant values checked against the system's C headers.
//!
//! A C probe is generated from the lists below, compiled with the system's `cc`
//! against `/usr/include/scsi/sg.h` and `scsi.h`, and its output (size,
//! alignment, every field offset and size, and every macro's value) is compared
//! with what Rust says. Moving or resizing a field on either side fails here.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use sgmap_sys::*;

/// Field size as Rust sees it, without constructing a value.
macro_rules! field_size {
    ($t:ty, $f:ident) => {{
        fn size<T>(_: *const T) -> usize {
            size_of::<T>()
        }
        let v = std::mem::MaybeUninit::<$t>::uninit();
        // SAFETY: only the address of the field is taken; nothing is read.
        size(unsafe { std::ptr::addr_of!((*v.as_ptr()).$f) })
    }};
}

/// `(c_name, [(field, rust_offset, rust_size)], rust_size, rust_align)` per struct.
macro_rules! structs {
    ($($c:literal => $t:ty { $($f:ident),* $(,)? })*) => {
        vec![$((
            $c,
            vec![$((stringify!($f), offset_of!($t, $f), field_size!($t, $f))),*],
            size_of::<$t>(),
            align_of::<$t>(),
        )),*]
    };
}

macro_rules! consts {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), $name as i128)),*]
    };
}

fn probe(name: &str, source: &str) -> BTreeMap<String, i128> {
    // One folder per probe: the tests run in parallel.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("probe.c");
    let exe = dir.join("probe");
    std::fs::write(&c, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "the C probe did not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().expect("run the C probe");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn structs_match_scsi_sg_h() {
    let structs = structs! {
        "struct sg_io_hdr" => sg_io_hdr {
            interface_id, dxfer_direction, cmd_len, mx_sb_len, iovec_count, dxfer_len,
            dxferp, cmdp, sbp, timeout, flags, pack_id, usr_ptr, status, masked_status,
            msg_status, sb_len_wr, host_status, driver_status, resid, duration, info,
        }
        "struct sg_iovec" => sg_iovec { iov_base, iov_len }
        "struct sg_scsi_id" => sg_scsi_id {
            host_no, channel, scsi_id, lun, scsi_type, h_cmd_per_lun, d_queue_depth, unused,
        }
        "struct sg_req_info" => sg_req_info {
            req_state, orphan, sg_io_owned, problem, pack_id, usr_ptr, duration, unused,
        }
    };
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdalign.h>\n#include <scsi/sg.h>\nint main(void) {\n",
    );
    for (c, fields, _, _) in &structs {
        let key = c.replace(' ', "_");
        src += &format!("printf(\"{key}.size %zu\\n\", sizeof({c}));\n");
        src += &format!("printf(\"{key}.align %zu\\n\", alignof({c}));\n");
        for (f, _, _) in fields {
            src += &format!("printf(\"{key}.{f}.offset %zu\\n\", offsetof({c}, {f}));\n");
            src += &format!("printf(\"{key}.{f}.size %zu\\n\", sizeof((({c} *)0)->{f}));\n");
        }
    }
    src += "return 0; }\n";
    let c = probe("struct-probe", &src);
    let mut checked = 0;
    for (name, fields, size, align) in &structs {
        let key = name.replace(' ', "_");
        assert_eq!(c[&format!("{key}.size")], *size as i128, "sizeof({name})");
        assert_eq!(
            c[&format!("{key}.align")],
            *align as i128,
            "alignof({name})"
        );
        for (f, off, sz) in fields {
            assert_eq!(
                c[&format!("{key}.{f}.offset")],
                *off as i128,
                "offsetof({name}, {f})"
            );
            assert_eq!(
                c[&format!("{key}.{f}.size")],
                *sz as i128,
                "sizeof({name}.{f})"
            );
            checked += 1;
        }
    }
    // Every field of sg_io_hdr is listed: the offsets cover the whole struct.
    assert_eq!(checked, 22 + 2 + 8 + 8);
}

#[test]
fn constants_match_system_headers() {
    // Everything glibc's <scsi/sg.h> and <scsi/scsi.h> (and <linux/major.h>, <linux/fs.h>) define that we mirror.
    let consts = consts![
        SG_DXFER_NONE,
        SG_DXFER_TO_DEV,
        SG_DXFER_FROM_DEV,
        SG_DXFER_TO_FROM_DEV,
        SG_FLAG_DIRECT_IO,
        SG_FLAG_LUN_INHIBIT,
        SG_FLAG_NO_DXFER,
        SG_INFO_OK_MASK,
        SG_INFO_OK,
        SG_INFO_CHECK,
        SG_INFO_DIRECT_IO_MASK,
        SG_INFO_INDIRECT_IO,
        SG_INFO_DIRECT_IO,
        SG_INFO_MIXED_IO,
        SG_EMULATED_HOST,
        SG_SET_TRANSFORM,
        SG_GET_TRANSFORM,
        SG_SET_RESERVED_SIZE,
        SG_GET_RESERVED_SIZE,
        SG_GET_SCSI_ID,
        SG_SET_FORCE_LOW_DMA,
        SG_GET_LOW_DMA,
        SG_SET_FORCE_PACK_ID,
        SG_GET_PACK_ID,
        SG_GET_NUM_WAITING,
        SG_GET_SG_TABLESIZE,
        SG_GET_VERSION_NUM,
        SG_SCSI_RESET,
        SG_SCSI_RESET_NOTHING,
        SG_SCSI_RESET_DEVICE,
        SG_SCSI_RESET_BUS,
        SG_SCSI_RESET_HOST,
        SG_IO,
        SG_GET_REQUEST_TABLE,
        SG_SET_KEEP_ORPHAN,
        SG_GET_KEEP_ORPHAN,
        SG_SCATTER_SZ,
        SG_DEFAULT_RETRIES,
        SG_DEF_FORCE_PACK_ID,
        SG_DEF_KEEP_ORPHAN,
        SG_DEF_RESERVED_SIZE,
        SG_MAX_QUEUE,
        SG_MAX_SENSE,
        SG_SET_TIMEOUT,
        SG_GET_TIMEOUT,
        SG_GET_COMMAND_Q,
        SG_SET_COMMAND_Q,
        SG_SET_DEBUG,
        SG_NEXT_CMD_LEN,
        BLKSECTGET,
        TEST_UNIT_READY,
        REQUEST_SENSE,
        READ_6,
        WRITE_6,
        INQUIRY,
        MODE_SENSE,
        READ_CAPACITY,
        READ_10,
        WRITE_10,
        VERIFY,
        SYNCHRONIZE_CACHE,
        WRITE_BUFFER,
        READ_BUFFER,
        MODE_SENSE_10,
        READ_12,
        WRITE_12,
        GOOD,
        CHECK_CONDITION,
        CONDITION_GOOD,
        BUSY,
        INTERMEDIATE_GOOD,
        INTERMEDIATE_C_GOOD,
        RESERVATION_CONFLICT,
        COMMAND_TERMINATED,
        QUEUE_FULL,
        STATUS_MASK,
        NO_SENSE,
        RECOVERED_ERROR,
        NOT_READY,
        MEDIUM_ERROR,
        HARDWARE_ERROR,
        ILLEGAL_REQUEST,
        UNIT_ATTENTION,
        DATA_PROTECT,
        BLANK_CHECK,
        COPY_ABORTED,
        ABORTED_COMMAND,
        VOLUME_OVERFLOW,
        MISCOMPARE,
        TYPE_DISK,
        TYPE_TAPE,
        TYPE_PROCESSOR,
        TYPE_WORM,
        TYPE_ROM,
        TYPE_SCANNER,
        TYPE_MOD,
        TYPE_MEDIUM_CHANGER,
        TYPE_ENCLOSURE,
        TYPE_NO_LUN,
        SCSI_GENERIC_MAJOR,
    ];
    let mut src = String::from(
        "#include <stdio.h>\n#include <linux/fs.h>\n#include <scsi/sg.h>\n#include <scsi/scsi.h>\n#include <linux/major.h>\nint main(void) {\n",
    );
    for (name, _) in &consts {
        src += &format!("printf(\"{name} %lld\\n\", (long long)({name}));\n");
    }
    src += "return 0; }\n";
    let c = probe("const-probe", &src);
    for (name, value) in &consts {
        assert_eq!(
            c[*name], *value,
            "{name}: header says {}, sgmap-sys says {value}",
            c[*name]
        );
    }
    // The masked status is the SAM status shifted right by one.
    for (sam, masked) in [
        (SAM_STAT_GOOD, GOOD),
        (SAM_STAT_CHECK_CONDITION, CHECK_CONDITION),
        (SAM_STAT_CONDITION_MET, CONDITION_GOOD),
        (SAM_STAT_BUSY, BUSY),
        (SAM_STAT_RESERVATION_CONFLICT, RESERVATION_CONFLICT),
        (SAM_STAT_COMMAND_TERMINATED, COMMAND_TERMINATED),
        (SAM_STAT_TASK_SET_FULL, QUEUE_FULL),
    ] {
        assert_eq!((sam & STATUS_MASK) >> 1, masked);
    }
}
