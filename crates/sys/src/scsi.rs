//! SCSI-level constants: operation codes, status bytes, sense keys, host and
//! driver bytes. Names follow `<scsi/scsi.h>` and the kernel's `scsi_proto.h`.

// Operation codes used by sgmap and its tests.
/// TEST UNIT READY.
pub const TEST_UNIT_READY: u8 = 0x00;
/// REQUEST SENSE.
pub const REQUEST_SENSE: u8 = 0x03;
/// READ(6).
pub const READ_6: u8 = 0x08;
/// WRITE(6).
pub const WRITE_6: u8 = 0x0a;
/// INQUIRY.
pub const INQUIRY: u8 = 0x12;
/// MODE SENSE(6).
pub const MODE_SENSE: u8 = 0x1a;
/// READ CAPACITY(10).
pub const READ_CAPACITY: u8 = 0x25;
/// READ(10).
pub const READ_10: u8 = 0x28;
/// WRITE(10).
pub const WRITE_10: u8 = 0x2a;
/// VERIFY(10).
pub const VERIFY: u8 = 0x2f;
/// SYNCHRONIZE CACHE(10).
pub const SYNCHRONIZE_CACHE: u8 = 0x35;
/// WRITE BUFFER.
pub const WRITE_BUFFER: u8 = 0x3b;
/// READ BUFFER.
pub const READ_BUFFER: u8 = 0x3c;
/// MODE SENSE(10).
pub const MODE_SENSE_10: u8 = 0x5a;
/// READ(16).
pub const READ_16: u8 = 0x88;
/// WRITE(16).
pub const WRITE_16: u8 = 0x8a;
/// SERVICE ACTION IN(16); with service action 0x10 it is READ CAPACITY(16).
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
/// Service action of READ CAPACITY(16).
pub const SAI_READ_CAPACITY_16: u8 = 0x10;
/// READ(12).
pub const READ_12: u8 = 0xa8;
/// WRITE(12).
pub const WRITE_12: u8 = 0xaa;

// Status byte as the device returns it (`sg_io_hdr::status`), SAM numbering.
/// GOOD.
pub const SAM_STAT_GOOD: u8 = 0x00;
/// CHECK CONDITION: sense data says why.
pub const SAM_STAT_CHECK_CONDITION: u8 = 0x02;
/// CONDITION MET.
pub const SAM_STAT_CONDITION_MET: u8 = 0x04;
/// BUSY.
pub const SAM_STAT_BUSY: u8 = 0x08;
/// INTERMEDIATE (obsolete).
pub const SAM_STAT_INTERMEDIATE: u8 = 0x10;
/// INTERMEDIATE-CONDITION MET (obsolete).
pub const SAM_STAT_INTERMEDIATE_CONDITION_MET: u8 = 0x14;
/// RESERVATION CONFLICT.
pub const SAM_STAT_RESERVATION_CONFLICT: u8 = 0x18;
/// COMMAND TERMINATED (obsolete).
pub const SAM_STAT_COMMAND_TERMINATED: u8 = 0x22;
/// TASK SET FULL.
pub const SAM_STAT_TASK_SET_FULL: u8 = 0x28;
/// ACA ACTIVE.
pub const SAM_STAT_ACA_ACTIVE: u8 = 0x30;
/// TASK ABORTED.
pub const SAM_STAT_TASK_ABORTED: u8 = 0x40;

// Masked status (`sg_io_hdr::masked_status`), `<scsi/scsi.h>` numbering.
/// GOOD, masked.
pub const GOOD: u8 = 0x00;
/// CHECK CONDITION, masked.
pub const CHECK_CONDITION: u8 = 0x01;
/// CONDITION MET, masked.
pub const CONDITION_GOOD: u8 = 0x02;
/// BUSY, masked.
pub const BUSY: u8 = 0x04;
/// INTERMEDIATE, masked.
pub const INTERMEDIATE_GOOD: u8 = 0x08;
/// INTERMEDIATE-CONDITION MET, masked.
pub const INTERMEDIATE_C_GOOD: u8 = 0x0a;
/// RESERVATION CONFLICT, masked.
pub const RESERVATION_CONFLICT: u8 = 0x0c;
/// COMMAND TERMINATED, masked.
pub const COMMAND_TERMINATED: u8 = 0x11;
/// TASK SET FULL (QUEUE FULL), masked.
pub const QUEUE_FULL: u8 = 0x14;
/// Mask applied to the status byte before shifting.
pub const STATUS_MASK: u8 = 0x3e;

// Sense keys.
/// NO SENSE.
pub const NO_SENSE: u8 = 0x00;
/// RECOVERED ERROR.
pub const RECOVERED_ERROR: u8 = 0x01;
/// NOT READY.
pub const NOT_READY: u8 = 0x02;
/// MEDIUM ERROR.
pub const MEDIUM_ERROR: u8 = 0x03;
/// HARDWARE ERROR.
pub const HARDWARE_ERROR: u8 = 0x04;
/// ILLEGAL REQUEST.
pub const ILLEGAL_REQUEST: u8 = 0x05;
/// UNIT ATTENTION.
pub const UNIT_ATTENTION: u8 = 0x06;
/// DATA PROTECT.
pub const DATA_PROTECT: u8 = 0x07;
/// BLANK CHECK.
pub const BLANK_CHECK: u8 = 0x08;
/// VENDOR SPECIFIC.
pub const VENDOR_SPECIFIC: u8 = 0x09;
/// COPY ABORTED.
pub const COPY_ABORTED: u8 = 0x0a;
/// ABORTED COMMAND.
pub const ABORTED_COMMAND: u8 = 0x0b;
/// VOLUME OVERFLOW.
pub const VOLUME_OVERFLOW: u8 = 0x0d;
/// MISCOMPARE.
pub const MISCOMPARE: u8 = 0x0e;
/// COMPLETED.
pub const COMPLETED: u8 = 0x0f;

// Peripheral device types.
/// Direct-access block device (disk).
pub const TYPE_DISK: u8 = 0x00;
/// Sequential-access device (tape).
pub const TYPE_TAPE: u8 = 0x01;
/// Processor device.
pub const TYPE_PROCESSOR: u8 = 0x03;
/// Write-once device.
pub const TYPE_WORM: u8 = 0x04;
/// CD/DVD device.
pub const TYPE_ROM: u8 = 0x05;
/// Scanner.
pub const TYPE_SCANNER: u8 = 0x06;
/// Optical memory device.
pub const TYPE_MOD: u8 = 0x07;
/// Medium changer.
pub const TYPE_MEDIUM_CHANGER: u8 = 0x08;
/// Enclosure services device.
pub const TYPE_ENCLOSURE: u8 = 0x0d;
/// Host-managed zoned block device.
pub const TYPE_ZBC: u8 = 0x14;
/// No logical unit.
pub const TYPE_NO_LUN: u8 = 0x7f;

// Host bytes (`sg_io_hdr::host_status`), from the kernel's scsi_status.h.
/// No error.
pub const DID_OK: u16 = 0x00;
/// Could not connect before timeout.
pub const DID_NO_CONNECT: u16 = 0x01;
/// Bus stayed busy through the timeout.
pub const DID_BUS_BUSY: u16 = 0x02;
/// Timed out.
pub const DID_TIME_OUT: u16 = 0x03;
/// Bad target.
pub const DID_BAD_TARGET: u16 = 0x04;
/// Aborted.
pub const DID_ABORT: u16 = 0x05;
/// Parity error.
pub const DID_PARITY: u16 = 0x06;
/// Internal host adapter error.
pub const DID_ERROR: u16 = 0x07;
/// Reset by somebody.
pub const DID_RESET: u16 = 0x08;
/// Unexpected interrupt.
pub const DID_BAD_INTR: u16 = 0x09;
/// Passed through, no error.
pub const DID_PASSTHROUGH: u16 = 0x0a;
/// Low level driver wants a retry.
pub const DID_SOFT_ERROR: u16 = 0x0b;
/// Retry without decrementing the retry count.
pub const DID_IMM_RETRY: u16 = 0x0c;
/// Requeue the command.
pub const DID_REQUEUE: u16 = 0x0d;
/// Transport disrupted; retry after a delay.
pub const DID_TRANSPORT_DISRUPTED: u16 = 0x0e;
/// Transport failed fast.
pub const DID_TRANSPORT_FAILFAST: u16 = 0x0f;
/// Target failure (no retry on other paths).
pub const DID_TARGET_FAILURE: u16 = 0x10;
/// Nexus failure (reservation conflict).
pub const DID_NEXUS_FAILURE: u16 = 0x11;
/// Space allocation failure.
pub const DID_ALLOC_FAILURE: u16 = 0x12;
/// Medium error.
pub const DID_MEDIUM_ERROR: u16 = 0x13;
/// Transport marginal.
pub const DID_TRANSPORT_MARGINAL: u16 = 0x14;

// Driver bytes (`sg_io_hdr::driver_status`), as the sg driver still reports them.
/// No error.
pub const DRIVER_OK: u16 = 0x00;
/// Busy.
pub const DRIVER_BUSY: u16 = 0x01;
/// Soft error.
pub const DRIVER_SOFT: u16 = 0x02;
/// Media error.
pub const DRIVER_MEDIA: u16 = 0x03;
/// Error.
pub const DRIVER_ERROR: u16 = 0x04;
/// Invalid.
pub const DRIVER_INVALID: u16 = 0x05;
/// Timed out.
pub const DRIVER_TIMEOUT: u16 = 0x06;
/// Hard error.
pub const DRIVER_HARD: u16 = 0x07;
/// Sense data is valid.
pub const DRIVER_SENSE: u16 = 0x08;
/// Mask of the driver byte's low nibble.
pub const DRIVER_MASK: u16 = 0x0f;
