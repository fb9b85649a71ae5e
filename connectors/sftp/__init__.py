"""SFTP connector: daily CSV drops, as the social security bureau delivers them.

Layout on the server, under the connection's remote directory::

    <YYYYMMDD>/enrollments_<YYYYMMDD>.csv
    <YYYYMMDD>/contributions_<YYYYMMDD>.csv
    <YYYYMMDD>/_SUCCESS            written last: the drop is complete

A drop without ``_SUCCESS`` is never read. A resource's files are the ones matching its
``source.file_pattern``. Headers are the catalog's ``source_column`` names (Chinese) or an
alias; files are UTF-8 or GBK. Each file is downloaded to a temporary file (resuming from
the byte reached when the connection drops) and parsed in bounded Arrow batches, so memory
does not grow with file size. Processed files are remembered in ``SyncState.files``; an
incremental run reads only new or changed files.

Connection URI: ``sftp://user[:password]@host:port/remote/dir?key_file=...&known_hosts=...``.
Host keys are always verified against ``known_hosts`` (never added automatically).

The modules, along the seams: ``location`` (the URI, listed files), ``transport`` (the
SSH connection, host-key verification, reconnects, resumable downloads), ``encoding``
(UTF-8 or GBK), ``state`` (the files remembered between runs), ``connector`` (the drop
layout, the ``Connector`` protocol, one extraction). CSV parsing is ``connectors.csv_files``.
"""

from connectors.sftp.connector import SftpConnector, SftpExtraction
from connectors.sftp.location import RemoteFile, SftpLocation
from connectors.sftp.transport import Download

__all__ = [
    "Download",
    "RemoteFile",
    "SftpConnector",
    "SftpExtraction",
    "SftpLocation",
]
