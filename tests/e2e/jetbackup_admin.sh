#!/usr/bin/env bash
# A JetBackup 5 administrator's script, run against snapkeep (issue 13, "Show"): `jetbackup5api` is
# swapped for `snapkeep api`, and the HTTP half uses curl as JetBackup's Linux door expects.
# Every answer is checked; the first failed check stops the script (exit 1) and names the step.
#
# Inputs (environment): SNAPKEEP_HOME, URL (http://127.0.0.1:PORT), TOKEN (USER:SECRET), BACKUPS
# (a folder for the destination), ACCOUNT (a username), DATABASE (one of its MariaDB databases),
# FILE (a file under its home, as /relative/path), OUT (a folder for the download), LOSE_DATABASE (a
# command that drops DATABASE), STRUCTURE (the job's structure, default 4 Compressed).
set -euo pipefail

api() {  # api FUNCTION QUERY -> the JSON envelope on stdout
    snapkeep api -F "$1" -D "$2" -O json
}
get() {  # get JSON DOTTED.PATH -> the value (lists by index; "" for null)
    python3 -c '
import json, sys
value = json.loads(sys.argv[1])
for part in sys.argv[2].split("."):
    value = value[int(part)] if isinstance(value, list) else value[part]
print("" if value is None else value)' "$1" "$2"
}
check() {  # check STEP ACTUAL EXPECTED
    if [ "$2" != "$3" ]; then
        echo "FAIL [$1]: got '$2', expected '$3'" >&2
        exit 1
    fi
    echo "ok   [$1]"
}
ok() {  # ok STEP ENVELOPE
    check "$1" "$(get "$2" success)" 1
}
poll() {  # poll GROUP_ID -> waits for the group to finish, prints its final envelope
    for _ in $(seq 1 600); do
        local group
        group=$(api getQueueGroup "_id=$1")
        if [ "$(get "$group" data.status)" -ge 100 ]; then
            echo "$group"
            return
        fi
        sleep 0.3
    done
    echo "FAIL [poll]: queue group $1 did not finish" >&2
    exit 1
}

# 1. A destination the JetBackup way (Localv2 is JetBackup 5.3's name for Local)
dest=$(api manageDestination "action=create&name=Local%20disk&type=Localv2&options[path]=$BACKUPS")
ok destination "$dest"
DEST=$(get "$dest" data._id)
check destination-type "$(get "$dest" data.type)" Local

# 2. A daily schedule
sched=$(api manageSchedule "action=create&name=Nightly&type=2&type_data[0]=1&type_data[1]=2&type_data[2]=3&type_data[3]=4&type_data[4]=5&type_data[5]=6&type_data[6]=7")
ok schedule "$sched"
SCHED=$(get "$sched" data._id)

# 3. An Accounts job: full account, compressed, with a monitor
NAME="Full%20Account%20Backups%20${STRUCTURE:-4}"
job=$(api manageBackupJob "action=create&name=$NAME&type=1&contains=511&structure=${STRUCTURE:-4}&destination[0]=$DEST&monitor[notran]=2&monitor[ranfor]=1&time=0200&disabled=0")
ok job "$job"
JOB=$(get "$job" data._id)

# 4. The schedule links the job from its own side, and the job shows it with its next run
linked=$(api manageSchedule "action=modify&_id=$SCHED&jobs[0]=$JOB")
check schedule-count "$(get "$linked" data.count)" 1
fetched=$(api getBackupJob "_id=$JOB")
check job-schedule "$(get "$fetched" data.schedules.0._id)" "$SCHED"
test -n "$(get "$fetched" data.next_run)" || { echo "FAIL [next_run]: empty" >&2; exit 1; }
echo "ok   [next_run]"

# 5. Find it by name, then by destination; enabled jobs with find[disabled]=0
check find-by-name "$(get "$(api listBackupJobs "filter=$NAME")" data.total)" 1
check find-by-destination "$(get "$(api listBackupJobs "find[destination]=$DEST")" data.total)" 1
check find-enabled "$(get "$(api listBackupJobs "find[disabled]=0&filter=$NAME")" data.jobs.0._id)" "$JOB"

# 6. Disable it and re-schedule it; a disabled job has no next run
off=$(api manageBackupJob "action=modify&_id=$JOB&disabled=1&schedules[0][_id]=$SCHED&schedules[0][retain]=3")
check disabled "$(get "$off" data.disabled)" 1
check disabled-next-run "$(get "$off" data.next_run)" ""

# 7. Read-modify-write over HTTP: fetch, flip one field, send everything back
whole=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/?api=1&function=getBackupJob&_id=$JOB")
body=$(python3 -c '
import json, sys
job = json.loads(sys.argv[1])["data"]
job.update(function="manageBackupJob", action="modify", disabled=0)
print(json.dumps(job))' "$whole")
back=$(curl -sf -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$body" "$URL/")
ok read-modify-write "$back"
check enabled-again "$(get "$back" data.disabled)" ""

# 8. Run it and poll its queue group
run=$(api runBackupJobManually "_id=$JOB")
check running "$(get "$run" data.running)" 1
GROUP=$(get "$run" data.queue_group_id)
done=$(poll "$GROUP")
check run-status "$(get "$done" data.status)" 100
LOG=$(get "$done" data.log_id)

# 9. Its log, found the JetBackup way
logs=$(api listLogs "find[type]=1&find[info.ID]=$JOB&sort[start_time]=-1&limit=1")
check log-found "$(get "$logs" data.logs.0._id)" "$LOG"
text=$(api getLog "_id=$LOG&content=1")
case "$(get "$text" data.content)" in *"$ACCOUNT"*) echo "ok   [log-text]" ;; *) echo "FAIL [log-text]" >&2; exit 1 ;; esac

# 10. The accounts' backups (the official PHP sample call), then this account's
accounts=$(api listBackupForAccounts "type=1&contains=511")
ok backup-accounts "$accounts"
ACCOUNT_ID=$(get "$(api getAccount "_id=$ACCOUNT")" data._id)
backups=$(api listBackups "type=1&contains=511&account_id=$ACCOUNT_ID")
BACKUP=$(get "$backups" data.backups.0._id)
check backup-structure "$(get "$backups" data.backups.0.backup_structure)" "${STRUCTURE:-4}"
items=$(api getBackupItems "_id=$BACKUP")
item_of() {
    python3 -c '
import json, sys
print(next(i["_id"] for i in json.loads(sys.argv[1])["data"]["items"] if i["name"] == sys.argv[2]))' "$items" "$1"
}
DBS=$(item_of databases)
HOMEDIR=$(item_of homedir)

# 11. Lose one database (LOSE_DATABASE: the command that drops it), then restore it
eval "$LOSE_DATABASE"
restore=$(api addQueueItems "type=2&items[0]=$DBS&files[$DBS][/mariadb/$DATABASE]=File")
restored=$(poll "$(get "$restore" data._id)")
check restore-status "$(get "$restored" data.status)" 100

# 12. Download one file and fetch it over HTTP
down=$(api addQueueItems "type=4&items[0]=$HOMEDIR&files[$HOMEDIR][$FILE]=File")
DOWN=$(get "$down" data._id)
downloaded=$(poll "$DOWN")
check download-status "$(get "$downloaded" data.status)" 100
curl -sf -H "Authorization: Bearer $TOKEN" -o "$OUT/download.tar.zst" "$URL/download/$DOWN"
echo "ok   [fetched]"
echo "all checks passed"
