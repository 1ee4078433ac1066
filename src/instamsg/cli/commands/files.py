"""``instamsg files``: files stored for a client, with progress bars for transfers (spec §10.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from instamsg.cli.commands._common import ClientArgument, JsonOption, ProfileOption, TenantOption, api_client
from instamsg.cli.output import ExitCode, fail, print_json, print_line, print_record, print_table

app = typer.Typer(help="Files: upload to, download from and delete files of a client.", no_args_is_help=True)

FilenameArgument = Annotated[str, typer.Argument(help="File name as stored.", show_default=False)]
LIST_COLUMNS = ("filename", "size", "source", "device_status", "updated_at", "url")


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        disable=quiet,
    )


@app.command("list")
def list_files(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the files stored for a client (getFiles)."""
    with api_client(profile) as api:
        files = api.get_files(tenant_id, client_id)
    rows = [item.to_json() for item in files]
    if json_output:
        print_json(rows)
    else:
        print_table("Files", LIST_COLUMNS, rows)


@app.command("upload")
def upload_file(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    path: Annotated[Path, typer.Argument(help="Local file to upload.", show_default=False)],
    name: Annotated[
        str | None, typer.Option("--name", help="Name to store it under [default: its name].")
    ] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a file for a client; an online device is sent its URL (uploadFile)."""
    if not path.is_file():
        raise fail(f"{path} is not a readable file", ExitCode.USAGE)
    filename = name or path.name
    with api_client(profile) as api, _progress(json_output) as progress:
        task = progress.add_task(f"upload {filename}", total=None)
        try:
            stored = api.upload_file(tenant_id, client_id, filename, path)
        except OSError as error:
            raise fail(f"cannot read {path}: {error.strerror or error}", ExitCode.USAGE) from None
        progress.update(task, total=stored.size, completed=stored.size)
    if json_output:
        print_json(stored.to_json())
    else:
        print_record(f"Uploaded {stored.filename}", stored.to_json())


@app.command("download")
def download_file(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    filename: FilenameArgument,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write it [default: ./FILENAME].")
    ] = None,
    profile: ProfileOption = None,
) -> None:
    """Download a stored file (downloadFile)."""
    target = output or Path(Path(filename).name)
    with api_client(profile) as api, _progress(False) as progress:
        task = progress.add_task(f"download {filename}", total=None)

        def advance(received: int, total: int | None) -> None:
            progress.update(task, completed=received, total=total)

        # Written aside and renamed at the end, so that a failed download leaves no truncated file.
        partial = target.with_name(target.name + ".part")
        try:
            count = api.download_file(tenant_id, client_id, filename, partial, progress=advance)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise fail(f"cannot write {target}: {error.strerror or error}", ExitCode.USAGE) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
    print_line(f"Saved {count} bytes to {target}")


@app.command("delete")
def delete_file(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    filename: FilenameArgument,
    on_device: Annotated[
        bool, typer.Option("--on-device", help="Also ask an online device to delete it.")
    ] = False,
    profile: ProfileOption = None,
) -> None:
    """Delete a stored file and revoke its URL (deleteFile)."""
    with api_client(profile) as api:
        api.delete_file(tenant_id, client_id, filename, on_device=on_device)
    print_line(f"Deleted {filename}")
