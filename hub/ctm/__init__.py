"""The CMS HPMS CTM API: client, download/upload file formats, and a simulator of CMS."""
