"""gunicorn's access log without patients' phones: phone-shaped path segments and query values masked.

The API looks patients up by phone (`/api/v1/<tenant>/patients/<phone>/...`), so the path itself would carry
the number into the log in clear. The rule is the core's (`redaction.mask_path_phones`); this class only
applies it to the atoms gunicorn formats. Used by the Procfile: `--logger-class connector.web.access_log.
MaskingLogger`.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from connector.core.redaction import mask_path_phones


class MaskingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("U", "q"):
            if atoms.get(key):
                atoms[key] = mask_path_phones(atoms[key])
        method, _, rest = str(atoms.get("r", "")).partition(" ")
        target, _, protocol = rest.rpartition(" ")
        if target:
            atoms["r"] = f"{method} {mask_path_phones(target)} {protocol}"
        # The raw target may also be asked for by name in a custom format.
        for key in ("{raw_uri}e", "{path_info}e", "{query_string}e", "{request_uri}e"):
            if atoms.get(key):
                atoms[key] = mask_path_phones(str(atoms[key]))
        return atoms
