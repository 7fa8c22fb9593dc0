@echo off
rem Starts boothgate from this checkout and starts it again if it stops (crash, update).
rem Settings: put BOOTHGATE_... lines in the .env file in the checkout's folder (see docs/setup.md).
rem Used by install-autostart.ps1 (a Task Scheduler task at logon); you can also double-click it.
rem To stop: press Ctrl+C once in this window. The server stops accepting, lets every booth in flight get
rem its answer (about 50 s at most), stops its image workers last (they ignore Ctrl+C) and exits; then
rem answer Y to "Terminate batch job". A second Ctrl+C stops at once and booths in flight get no answer.
setlocal
cd /d "%~dp0..\.."
if not exist ".venv\Scripts\python.exe" (
  echo First start: creating .venv and installing boothgate...
  py -3 -m venv .venv || python -m venv .venv
  ".venv\Scripts\python.exe" -m pip install --upgrade pip
  ".venv\Scripts\python.exe" -m pip install -c requirements.lock -e .
  rem The offline engine: mediapipe without the jax/matplotlib wheels it declares but does not use
  rem (Python 3.11 or 3.12 only; on other versions the Offline tab says so and everything else works).
  ".venv\Scripts\python.exe" -m pip install --no-deps mediapipe==0.10.21
)
if not exist data mkdir data
:loop
echo [%date% %time%] starting boothgate >> data\boothgate.log
".venv\Scripts\python.exe" -m boothgate serve >> data\boothgate.log 2>&1
echo [%date% %time%] boothgate stopped with code %errorlevel%; starting again in 5 s >> data\boothgate.log
timeout /t 5 /nobreak > nul
goto loop
