//! Finding sg devices through sysfs.
