<#
.SYNOPSIS
  m2fp-obs installer for Windows (PowerShell 5.1+).

.DESCRIPTION
  1. Finds OBS Studio and the newest Python it can load (OBS 29.0: 3.10; 29.1-30.0: 3.11; 30.1+: 3.12).
  2. Finds that Python (python.org install, via the `py` launcher) and installs pyzmq into it.
  3. Installs the inference server into a venv: $env:LOCALAPPDATA\m2fp-obs\venv
  4. With -ConfigureObs, points OBS at that Python (Tools > Scripts > Python Settings); OBS must be closed.
  5. Prints the exact script path to add in OBS (Tools > Scripts > +) and runs `m2fp doctor`.

  Not tested on Windows by the project's CI (it runs on Linux); please report problems.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File install_scripts\install.ps1 -ConfigureObs
#>
[CmdletBinding()]
param(
    [switch]$ConfigureObs,
    [switch]$DryRun,
    [string]$InstallDir = (Join-Path $env:LOCALAPPDATA "m2fp-obs")
)
$ErrorActionPreference = "Stop"

$Repo = Split-Path -Parent $PSScriptRoot
$Script = Join-Path $Repo "obs_plugin\m2fp_obs_filter.py"
$Venv = Join-Path $InstallDir "venv"

function Say($text) { Write-Host "==> $text" -ForegroundColor Cyan }
function Run([string]$exe, [string[]]$arguments) {
    Write-Host "    > $exe $($arguments -join ' ')"
    if (-not $DryRun) {
        & $exe @arguments
        if ($LASTEXITCODE -ne 0) { throw "$exe failed with exit code $LASTEXITCODE" }
    }
}

# ---------------------------------------------------------------- 1. OBS and the Python it loads
Say "OBS Studio"
$obsExe = $null
foreach ($base in @($env:ProgramFiles, ${env:ProgramFiles(x86)})) {
    if ($base) {
        $cand = Join-Path $base "obs-studio\bin\64bit\obs64.exe"
        if (Test-Path $cand) { $obsExe = $cand; break }
    }
}
$pyMinor = 12
if ($obsExe) {
    $v = (Get-Item $obsExe).VersionInfo
    $major = $v.FileMajorPart; $minor = $v.FileMinorPart
    Write-Host "    found $obsExe (version $major.$minor)"
    if ($major -lt 29) { throw "OBS $major.$minor is too old: the filter needs OBS 29 or newer" }
    if ($major -eq 29 -and $minor -eq 0) { $pyMinor = 10 }
    elseif ($major -eq 29 -or ($major -eq 30 -and $minor -eq 0)) { $pyMinor = 11 }
    else { $pyMinor = 12 }  # OBS 30.1 - 32.x load at most Python 3.12 (not 3.13)
} else {
    Write-Warning "OBS Studio not found under Program Files; assuming a recent OBS (Python 3.12)"
}
$pyVer = "3.$pyMinor"

Say "Python $pyVer for OBS"
$obsPython = $null
if (Get-Command py -ErrorAction SilentlyContinue) {
    $obsPython = (& py "-$pyVer" -c "import sys; print(sys.executable)" 2>$null)
}
if (-not $obsPython) {
    Write-Host "    Python $pyVer (64-bit) is not installed. Install it from https://www.python.org/downloads/"
    Write-Host "    (or: winget install Python.Python.$pyVer), then run this script again."
    Write-Host "    The Microsoft Store Python cannot be used by OBS."
    exit 1
}
$obsPython = $obsPython.Trim()
$pyHome = Split-Path -Parent $obsPython
if ($pyHome -like "*WindowsApps*") { throw "$obsPython is the Microsoft Store Python; OBS needs a python.org install" }
Write-Host "    $obsPython"
Run $obsPython @("-m", "pip", "install", "--upgrade", "pyzmq")  # into that install: OBS sees its site-packages

# ---------------------------------------------------------------- 2. the server venv
Say "inference server -> $Venv"
if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) {
    Run $obsPython @("-m", "venv", $Venv)
}
$venvPy = Join-Path $Venv "Scripts\python.exe"
Run $venvPy @("-m", "pip", "install", "--upgrade", "pip")
Run $venvPy @("-m", "pip", "install", "-e", $Repo)

# ---------------------------------------------------------------- 3. OBS's Python setting
if ($ConfigureObs) {
    Say "OBS Python Settings -> $pyHome"
    if (Get-Process obs64 -ErrorAction SilentlyContinue) { throw "close OBS first (it rewrites its settings on exit)" }
    $cfgDir = Join-Path $env:APPDATA "obs-studio"
    # OBS 31+ keeps the setting in user.ini, older versions in global.ini
    $ini = if (Test-Path (Join-Path $cfgDir "user.ini")) { Join-Path $cfgDir "user.ini" } else { Join-Path $cfgDir "global.ini" }
    if (-not $DryRun) {
        New-Item -ItemType Directory -Force -Path $cfgDir | Out-Null
        $lines = @(); if (Test-Path $ini) { $lines = Get-Content $ini }
        $out = New-Object System.Collections.Generic.List[string]
        $inPython = $false; $done = $false
        foreach ($line in $lines) {
            if ($line -match '^\[(.+)\]$') {
                if ($inPython -and -not $done) { $out.Add("Path64bit=$pyHome"); $done = $true }
                $inPython = ($Matches[1] -eq "Python")
            }
            if ($inPython -and $line -match '^Path64bit=') { $out.Add("Path64bit=$pyHome"); $done = $true; continue }
            $out.Add($line)
        }
        if (-not $done) {
            if (-not $inPython) { $out.Add("[Python]") }
            $out.Add("Path64bit=$pyHome")
        }
        [System.IO.File]::WriteAllLines($ini, $out)  # UTF-8 without a BOM
    }
    Write-Host "    wrote [Python] Path64bit=$pyHome to $ini"
} else {
    Write-Host "    In OBS: Tools > Scripts > Python Settings > $pyHome   (then restart OBS)"
}

# ---------------------------------------------------------------- 4. where things are
Say "done"
Write-Host ""
Write-Host "  Script to add in OBS (Tools > Scripts > +):"
Write-Host "      $Script"
Write-Host "  The filter starts the server itself (address on 127.0.0.1, nothing listening). By hand:"
Write-Host "      $(Join-Path $Venv 'Scripts\m2fp-server.exe')"
Write-Host "  Then: a source > Filters > + > 'M2FP Background'."
Write-Host ""
if (-not $DryRun) { & (Join-Path $Venv "Scripts\m2fp.exe") doctor --obs-python $obsPython }
