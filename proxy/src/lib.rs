//! ringway: an HTTP/1.1 front end for uWSGI on io_uring.

pub mod http;
pub mod uwsgi;
