//! First boot: provisioning the node's identity on the state partition.
//! (Partition discovery and the state mount live in the image's initramfs.)

pub mod adopt;
pub mod enroll_file;
pub mod enroll_source;
pub mod firstboot;
pub mod gw_config;
pub mod modules_wait;
