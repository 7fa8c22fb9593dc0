# Start boothgate at logon on a Windows booth PC and let booths on the network reach its port.
# Run once in an administrator PowerShell, from the checkout:
#   powershell -ExecutionPolicy Bypass -File deploy\windows\install-autostart.ps1 -Port 8000
# Undo: Unregister-ScheduledTask -TaskName boothgate; Remove-NetFirewallRule -DisplayName "boothgate"
param(
    [int]$Port = 8000,
    [string]$TaskName = "boothgate"
)
$ErrorActionPreference = "Stop"
$script = Join-Path $PSScriptRoot "start-boothgate.cmd"
$checkout = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path

# 1. A task that runs start-boothgate.cmd when this user logs on (minimised console, no time limit).
$action = New-ScheduledTaskAction -Execute "cmd.exe" -Argument "/c start `"boothgate`" /min `"$script`"" -WorkingDirectory $checkout
$trigger = New-ScheduledTaskTrigger -AtLogOn -User $env:USERNAME
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 1)
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Force | Out-Null
Write-Host "Task '$TaskName' starts boothgate at logon ($script)."

# 2. The firewall: let devices on private networks (the venue's Wi-Fi) reach the port.
if (-not (Get-NetFirewallRule -DisplayName "boothgate" -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -DisplayName "boothgate" -Direction Inbound -Protocol TCP -LocalPort $Port -Action Allow -Profile Private,Domain | Out-Null
}
Write-Host "Firewall: TCP port $Port is open on private networks. Mark the venue's Wi-Fi as Private in Windows settings."
Write-Host "Start it now without logging off: Start-ScheduledTask -TaskName $TaskName"
