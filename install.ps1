# Set up DeepDream for GIMP from this folder, on Windows (Linux and macOS: install.sh).
# Safe to run again. In PowerShell, in this folder:
#
#   powershell -ExecutionPolicy Bypass -File .\install.ps1              the engine, daemon, CLI and GIMP plug-in
#   powershell -ExecutionPolicy Bypass -File .\install.ps1 --service    also start the daemon whenever you log in
#   powershell -ExecutionPolicy Bypass -File .\install.ps1 --help       all options (the same as install.sh's)
#
# The work is done by installer\ (Python's standard library only); this finds a
# Python 3.11 or newer for it: the py launcher's, else python on the PATH.
$ErrorActionPreference = 'Stop'
$here = $PSScriptRoot

function Test-Python($command) {
    # The Microsoft Store's "python" stub, when no Python is installed, fails here as a missing one does.
    try {
        & $command[0] @($command | Select-Object -Skip 1) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>$null
        return $LASTEXITCODE -eq 0
    } catch {
        return $false
    }
}

$python = $null
foreach ($candidate in @(@('py', '-3'), @('python'), @('python3'))) {
    if ((Get-Command $candidate[0] -ErrorAction SilentlyContinue) -and (Test-Python $candidate)) {
        $python = $candidate
        break
    }
}
if (-not $python) {
    Write-Host 'DeepDream needs Python 3.11 or newer. Install it from python.org (tick "Add python.exe to PATH"),'
    Write-Host 'or in PowerShell: winget install Python.Python.3.12 ; then run install.ps1 again.'
    exit 1
}

$env:PYTHONPATH = $here  # to find installer\; the installer does not pass it on to what it runs
& $python[0] @($python | Select-Object -Skip 1) -m installer @args
exit $LASTEXITCODE
